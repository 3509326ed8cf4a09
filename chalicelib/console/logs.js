// Logs: the audit log (Type and Action columns, as in Logs > Audit logs), the signature log
// (Keypair alias and Keypair ID filters) and one signature-log entry.

import { ApiError, api, seg } from "./api.js";
import { formatTime, humanize, label, localInputToRfc3339, rfc3339ToLocalInput, timeElement, timeZone } from "./format.js";
import { listPage } from "./listpage.js";
import { alertBox, badge, button, dataTable, download, fieldList, h, loading, pageHeader, replace, selectField, textField } from "./ui.js";

const ANY = [["", "Any"]];
const AUDIT_TYPES = ["static", "dynamic", "certificate", "user", "group", "team", "profile", "release_window", "api_key", "account"];
const AUDIT_ACTIONS = ["generate", "refresh", "update", "delete", "suspend", "unsuspend", "sign_denied", "create", "revoke", "authenticate", "sweep"];
// Entries seen in the last signature-log page, so that opening one needs no second request.
const seenSignatures = new Map();
let lastSignatureQuery = "";

const options = (values) => [...ANY, ...values.map((v) => [v, humanize(v)])];
const outcomeBadge = (outcome) => badge(label(outcome), outcome === "success" ? "ok" : "bad");

/** Text fields for a time range in the user's zone; the query carries RFC 3339 UTC. */
function timeRangeFields(params) {
  const zone = timeZone();
  return [
    textField({ name: "from", label: `From (${zone})`, type: "datetime-local", step: "1", value: rfc3339ToLocalInput(params.get("from")) }),
    textField({ name: "to", label: `To (${zone})`, type: "datetime-local", step: "1", value: rfc3339ToLocalInput(params.get("to")) }),
  ];
}

function toQuery(values) {
  const query = { ...values };
  if ("from" in query) query.from = localInputToRfc3339(query.from);
  if ("to" in query) query.to = localInputToRfc3339(query.to);
  return query;
}

function detailsText(entry) {
  const parts = [];
  for (const [key, value] of Object.entries(entry.details || {})) {
    parts.push(`${humanize(key)}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
  }
  if (entry.error) parts.push(`Error: ${entry.error}`);
  return parts.length ? h("ul", { class: "compact" }, parts.map((p) => h("li", {}, p))) : "—";
}

/** #/logs/audit?type=&action=&resource_id=&actor=&outcome=&from=&to= */
export function auditPage(view) {
  const { params } = view;
  const zone = timeZone();
  const keypairLink = (entry) => {
    if (!entry.resource_id) return "—";
    const text = entry.resource_alias ? [entry.resource_alias, h("span", { class: "mono sub" }, entry.resource_id)] : h("span", { class: "mono" }, entry.resource_id);
    return String(entry.resource_id).startsWith("kp_") ? h("a", { href: `#/keypairs/${seg(entry.resource_id)}` }, text) : h("span", {}, text);
  };
  return listPage(view, {
    toQuery,
    title: "Audit logs",
    subtitle: "Every change to keypairs, users and settings, and every refused signature. Refreshed dynamic keypairs: Type Dynamic, Action Refresh.",
    route: "logs/audit",
    path: "audit-logs",
    names: ["type", "action", "resource_id", "actor", "outcome", "from", "to"],
    fields: [
      selectField({ name: "type", label: "Type", value: params.get("type") || "", options: options(AUDIT_TYPES) }),
      selectField({ name: "action", label: "Action", value: params.get("action") || "", options: options(AUDIT_ACTIONS) }),
      textField({ name: "resource_id", label: "Resource ID", value: params.get("resource_id") || "", autocomplete: "off", spellcheck: "false" }),
      textField({ name: "actor", label: "Actor (user ID)", value: params.get("actor") || "", autocomplete: "off", spellcheck: "false" }),
      selectField({ name: "outcome", label: "Outcome", value: params.get("outcome") || "", options: [...ANY, ["success", "Success"], ["failure", "Failure"]] }),
      ...timeRangeFields(params),
    ],
    table: (items) =>
      dataTable({
        caption: "Audit log entries",
        empty: "No audit entry matches these filters.",
        rows: items,
        columns: [
          { label: `Time (${zone})`, cell: (e) => timeElement(h, e.at) },
          { label: "Type", cell: (e) => humanize(e.type) },
          { label: "Action", cell: (e) => humanize(e.action) },
          { label: "Resource", cell: keypairLink },
          { label: "Actor", class: "mono", cell: (e) => e.actor || "—" },
          { label: "Outcome", cell: (e) => outcomeBadge(e.outcome) },
          { label: "Source IP", class: "mono", cell: (e) => e.source_ip || "—" },
          { label: "Details", class: "wide", cell: detailsText },
        ],
      }),
  });
}

/** #/logs/signatures?keypair_alias=&keypair_id=&status=&signer=&from=&to= */
export function signaturesPage(view) {
  const { params } = view;
  const zone = timeZone();
  lastSignatureQuery = params.toString();
  return listPage(view, {
    toQuery,
    title: "Signature logs",
    subtitle: "Every signing attempt, successful or refused, with the key generation that made it.",
    route: "logs/signatures",
    path: "signature-logs",
    names: ["keypair_alias", "keypair_id", "status", "signer", "from", "to"],
    fields: [
      textField({ name: "keypair_alias", label: "Keypair alias", value: params.get("keypair_alias") || "", autocomplete: "off", spellcheck: "false" }),
      textField({ name: "keypair_id", label: "Keypair ID", value: params.get("keypair_id") || "", autocomplete: "off", spellcheck: "false" }),
      selectField({ name: "status", label: "Status", value: params.get("status") || "", options: [...ANY, ["success", "Success"], ["failed", "Failed"]] }),
      textField({ name: "signer", label: "Signer (user ID)", value: params.get("signer") || "", autocomplete: "off", spellcheck: "false" }),
      ...timeRangeFields(params),
    ],
    table: (items) => {
      seenSignatures.clear();
      for (const entry of items) seenSignatures.set(entry.id, entry);
      return dataTable({
        caption: "Signature log entries",
        empty: "No signature matches these filters.",
        rows: items,
        columns: [
          {
            label: `Time (${zone})`,
            cell: (e) => h("a", { href: `#/logs/signatures/${seg(e.id)}`, "aria-label": `Signature of ${formatTime(e.signed_at)}, details` }, timeElement(h, e.signed_at)),
          },
          { label: "Status", cell: (e) => outcomeBadge(e.status) },
          { label: "Keypair alias", class: "nowrap", cell: (e) => e.keypair_alias || "—" },
          { label: "Keypair ID", class: "mono", cell: (e) => e.keypair_id || "—" },
          { label: "Generation", cell: (e) => (e.generation === null || e.generation === undefined ? "—" : String(e.generation)) },
          { label: "Algorithm", cell: (e) => e.sig_alg || e.algorithm || "—" },
          { label: "File", cell: (e) => e.file_name || "—" },
          { label: "Signer", class: "mono", cell: (e) => e.signer || "—" },
        ],
      });
    },
  });
}

/** #/logs/signatures/{id}: one entry in full. */
export async function signatureEntryPage(view) {
  const { root, args } = view;
  const [id] = args;
  const back = h("p", { class: "breadcrumb" }, h("a", { href: `#/logs/signatures${lastSignatureQuery ? `?${lastSignatureQuery}` : ""}` }, "Signature logs"), " / ", "Entry");
  let entry = seenSignatures.get(id);
  if (!entry) {
    replace(root, back, loading("Loading the entry"));
    try {
      entry = await api("GET", `signature-logs/${seg(id)}`);
    } catch (error) {
      const missing = error instanceof ApiError && (error.status === 404 || error.status === 403);
      replace(root, back, pageHeader("Signature-log entry"), alertBox(missing ? `The entry ${id} cannot be shown here; open it from the signature log.` : error.message));
      view.ready();
      return;
    }
  }
  const pre = (text) => (text ? h("pre", { class: "mono wrap" }, text) : "—");
  replace(
    root,
    back,
    pageHeader(`Signature by ${entry.keypair_alias || entry.keypair_id || "unknown keypair"}`, { subtitle: `${formatTime(entry.signed_at)} · ${timeZone()}` }),
    h(
      "section",
      { "aria-labelledby": "entry-title" },
      h("h2", { id: "entry-title" }, "Entry"),
      fieldList([
        ["Entry ID", h("span", { class: "mono" }, entry.id)],
        ["Signed at", timeElement(h, entry.signed_at)],
        ["Status", outcomeBadge(entry.status)],
        entry.error ? ["Error", entry.error] : null,
        ["Signer", h("span", { class: "mono" }, entry.signer || "—")],
        ["Client IP", entry.client_ip || "—"],
        ["File name", entry.file_name || "—"],
        ["Tool", entry.tool || "—"],
      ]),
    ),
    h(
      "section",
      { "aria-labelledby": "key-title" },
      h("h2", { id: "key-title" }, "Key"),
      fieldList([
        ["Keypair alias", entry.keypair_alias || "—"],
        ["Keypair ID", entry.keypair_id ? h("a", { href: `#/keypairs/${seg(entry.keypair_id)}`, class: "mono" }, entry.keypair_id) : "—"],
        ["Keypair type", label(entry.keypair_type)],
        ["Generation", entry.generation === null || entry.generation === undefined ? "—" : String(entry.generation)],
        ["Key ID", h("span", { class: "mono break" }, entry.key_id || "—")],
        "certificate_serial" in entry ? ["Certificate serial", h("span", { class: "mono break" }, entry.certificate_serial || "—")] : null,
        ["Signature type", label(entry.signature_type)],
      ]),
    ),
    h(
      "section",
      { "aria-labelledby": "sig-title" },
      h("h2", { id: "sig-title" }, "Signature"),
      fieldList([
        ["Algorithm", entry.algorithm || "—"],
        ["Signature algorithm", entry.sig_alg || "—"],
        ["Hash algorithm", entry.hash_algorithm || "—"],
        ["Hash (base64)", pre(entry.hash)],
        ["Signature (base64)", pre(entry.signature)],
        "timestamp_token" in entry ? ["Time-stamp token", entry.timestamp_token ? "Present (RFC 3161)" : "None"] : null,
      ]),
    ),
    proofSection(view, entry),
  );
  view.ready();
}

// While an entry waits for its checkpoint, look again this often (checkpoints follow the schedule).
const PROOF_RECHECK_MS = 15000;

/** The entry's place in the account's transparency log: included in a signed checkpoint, or pending. */
function proofSection(view, entry) {
  const status = h("div", { class: "proof", "aria-live": "polite" });
  let timer = null;
  view.onLeave(() => clearTimeout(timer));

  async function check() {
    clearTimeout(timer);
    status.setAttribute("aria-busy", "true");
    try {
      const proof = await api("GET", `signature-logs/${seg(entry.id)}/proof`);
      replace(
        status,
        fieldList([
          ["Proof status", badge("Included", "ok")],
          ["Checkpoint", `In the signed checkpoint of size ${proof.tree_size}`],
          ["Leaf index", String(proof.leaf_index)],
          ["Inclusion proof", `${proof.hashes.length} hash${proof.hashes.length === 1 ? "" : "es"} to the checkpoint's root`],
        ]),
        h("details", {}, h("summary", {}, "Signed checkpoint"), h("pre", { class: "mono wrap" }, proof.checkpoint)),
        h(
          "div",
          { class: "actions" },
          button("Download proof (JSON)", () => download(`${entry.id}-proof.json`, JSON.stringify(proof, null, 2), "application/json")),
          // The entry as GET /signature-logs/{id} answers it: the bytes the offline verifier checks.
          button("Download entry (JSON)", async () => {
            const stored = await api("GET", `signature-logs/${seg(entry.id)}`);
            download(`${entry.id}.json`, JSON.stringify(stored, null, 2), "application/json");
          }),
        ),
        h("p", { class: "hint" }, "Check them offline with python -m rotasign_cli.transparency inclusion and the account's trust file."),
      );
    } catch (error) {
      if (error instanceof ApiError && error.code === "not_yet_in_log") {
        replace(
          status,
          fieldList([
            ["Proof status", badge("Pending", "warn")],
            ["Checkpoint", "Pending the next checkpoint: new entries join the log on the checkpoint schedule."],
          ]),
          h("div", { class: "actions" }, button("Check again", check)),
        );
        timer = setTimeout(check, PROOF_RECHECK_MS);
      } else {
        replace(status, alertBox(error.message), h("div", { class: "actions" }, button("Check again", check)));
      }
    } finally {
      status.removeAttribute("aria-busy");
    }
  }
  replace(status, loading("Checking the transparency log"));
  check();
  return h("section", { "aria-labelledby": "proof-title" }, h("h2", { id: "proof-title" }, "Transparency log"), status);
}
