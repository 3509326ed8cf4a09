// Keypairs: the list with its filters, the Create keypair form, and one keypair's page.

import { ApiError, api, optionalList, seg } from "./api.js";
import { algorithmLabel, formatDuration, label, timeElement, timeZone } from "./format.js";
import { listPage } from "./listpage.js";
import {
  Pager,
  alertBox,
  badge,
  button,
  checkboxField,
  checkboxList,
  confirmDialog,
  dataTable,
  download,
  fieldList,
  h,
  loading,
  pageHeader,
  radioGroup,
  replace,
  selectField,
  textField,
  toast,
} from "./ui.js";

const PAGE_SIZE = 25;
const ANY = [["", "Any"]];
const RSA_SIZES = [["2048", "2048"], ["3072", "3072"], ["4096", "4096"]];
const EC_CURVES = [["P-256", "P-256"], ["P-384", "P-384"], ["P-521", "P-521"]];
const ED_CURVES = [["Ed25519", "Ed25519"]];
const FILTERS = ["alias", "type", "status", "storage", "algorithm", "category"];

const link = (href, text) => h("a", { href }, text);
const keypairHref = (kp) => `#/keypairs/${seg(kp.id)}`;
const statusBadge = (status) => badge(label(status), status === "online" ? "ok" : "warn");
const typeBadge = (type) => badge(label(type), type === "dynamic" ? "accent" : "");

// ---------------------------------------------------------------------------------------------
// The list

/** #/keypairs?type=&status=&storage=&algorithm=&category=&alias= */
export function keypairsPage(view) {
  const { ctx, params } = view;
  const value = (name) => params.get(name) || "";
  return listPage(view, {
    title: "Keypairs",
    subtitle: "Static keypairs keep their key; dynamic keypairs get a new key and certificate on every scheduled refresh.",
    actions: ctx.can("generate_keypair") ? [h("a", { href: "#/keypairs/new", class: "button primary" }, "Create keypair")] : [],
    route: "keypairs",
    path: "keypairs",
    names: FILTERS,
    pageSize: PAGE_SIZE,
    fields: [
      textField({ name: "alias", label: "Alias", value: value("alias"), autocomplete: "off", spellcheck: "false" }),
      selectField({ name: "type", label: "Type", value: value("type"), options: [...ANY, ["static", "Static"], ["dynamic", "Dynamic"]] }),
      selectField({ name: "status", label: "Status", value: value("status"), options: [...ANY, ["online", "Online"], ["offline", "Offline"]] }),
      selectField({ name: "storage", label: "Storage", value: value("storage"), options: [...ANY, ["hsm", "HSM"], ["disk", "Disk"]] }),
      selectField({ name: "algorithm", label: "Algorithm", value: value("algorithm"), options: [...ANY, ["RSA", "RSA"], ["ECDSA", "ECDSA"], ["EdDSA", "EdDSA"]] }),
      selectField({ name: "category", label: "Category", value: value("category"), options: [...ANY, ["production", "Production"], ["test", "Test"]] }),
    ],
    table: keypairTable,
  });
}

function keypairTable(items) {
  const zone = timeZone();
  return dataTable({
    caption: "Keypairs",
    empty: "No keypair matches these filters.",
    rows: items,
    columns: [
      { label: "Alias", class: "nowrap", cell: (kp) => link(keypairHref(kp), kp.alias) },
      { label: "ID", class: "mono", cell: (kp) => kp.id },
      { label: "Type", cell: (kp) => typeBadge(kp.type) },
      { label: "Algorithm", cell: (kp) => algorithmLabel(kp) },
      { label: "Status", cell: (kp) => statusBadge(kp.status) },
      { label: "Access", cell: (kp) => label(kp.access) },
      { label: "Category", cell: (kp) => label(kp.category) },
      { label: "Storage", cell: (kp) => label(kp.storage) },
      { label: `Certificate expires (${zone})`, cell: (kp) => timeElement(h, kp.certificate?.not_after) },
      { label: `Next refresh (${zone})`, cell: (kp) => (kp.type === "dynamic" ? timeElement(h, kp.next_refresh_at) : "—") },
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// Create keypair

/** #/keypairs/new: every field of the create request, adapting to the choices made. */
export async function createPage(view) {
  const { ctx, root } = view;
  replace(root, pageHeader("Create keypair"), loading("Loading the form"));
  const teamsOn = Boolean(ctx.account.teams_enabled);
  const [teams, profiles, users, groups] = await Promise.all([
    teamsOn ? optionalList("teams") : Promise.resolve({ available: false, items: [] }),
    optionalList("keypair-profiles"),
    optionalList("users"),
    optionalList("groups"),
  ]);
  const requireProfile = Boolean(ctx.account.require_keypair_profile);

  const f = {
    type: radioGroup({
      name: "type",
      legend: "Keypair type",
      value: "static",
      options: [
        ["static", "Static", "The key stays the same until you delete the keypair."],
        ["dynamic", "Dynamic", "A new key and certificate replace the old ones on every scheduled refresh."],
      ],
    }),
    alias: textField({
      name: "alias",
      label: "Keypair alias",
      hint: "A unique name: letters, digits, dots, dashes and underscores, up to 64 characters.",
      autocomplete: "off",
      spellcheck: "false",
      maxlength: "64",
    }),
    team: selectField({
      name: "team_id",
      label: "Team",
      hint: "The team that has access to this keypair.",
      options: [["", "No team"], ...teams.items.map((t) => [t.id, t.name || t.id])],
    }),
    profile: selectField({ name: "profile_id", label: "Keypair profile", options: [] }),
    algorithm: selectField({ name: "algorithm", label: "Algorithm", value: "RSA", options: [["RSA", "RSA"], ["ECDSA", "ECDSA"], ["EdDSA", "EdDSA"]] }),
    keySize: selectField({ name: "key_size", label: "Key size", value: "3072", options: RSA_SIZES }),
    curve: selectField({ name: "curve", label: "Key curve", value: "P-256", options: EC_CURVES }),
    category: radioGroup({
      name: "category",
      legend: "Keypair category",
      value: "production",
      options: [["production", "Production"], ["test", "Test", "Certified by the account's test CA: never verifies as production."]],
    }),
    storage: radioGroup({
      name: "storage",
      legend: "Keypair storage",
      value: "hsm",
      options: [["hsm", "HSM", "Generated and kept on the hardware security module."], ["disk", "Disk", "Encrypted under the service's KMS key."]],
    }),
    status: radioGroup({
      name: "status",
      legend: "Keypair status",
      value: "online",
      options: [["online", "Online", "Can sign at any time."], ["offline", "Offline", "Can sign only during a scheduled release window."]],
    }),
    access: radioGroup({
      name: "access",
      legend: "Access",
      value: "open",
      options: [["open", "Open", "Any user of the account with the sign permission."], ["restricted", "Restricted", "Only the users and groups chosen below."]],
    }),
    users: checkboxList({
      name: "allowed_users",
      legend: "Allowed users",
      items: users.items.map((u) => [u.id, u.email ? `${u.name || u.id} (${u.email})` : u.name || u.id]),
      empty: "No users to choose from.",
    }),
    groups: checkboxList({
      name: "allowed_groups",
      legend: "Allowed user groups",
      items: groups.items.map((g) => [g.id, g.name || g.id]),
      empty: "No groups to choose from.",
    }),
    certificate: checkboxField({
      name: "generate_certificate",
      label: "Generate certificate",
      checked: true,
      hint: "Issue a default code-signing certificate for the key.",
    }),
    singleUse: checkboxField({
      name: "refresh_after_sign",
      label: "New key after every signature",
      hint: "Single-use keys: each key makes at most one signature. The scheduled refresh still applies.",
    }),
  };
  const profileNote = h("p", { class: "hint locked-note", hidden: true });
  f.profile.wrap.append(profileNote);
  const byName = {
    type: f.type, alias: f.alias, team_id: f.team, profile_id: f.profile, algorithm: f.algorithm, key_size: f.keySize,
    curve: f.curve, category: f.category, storage: f.storage, status: f.status, access: f.access,
    allowed_users: f.users, allowed_groups: f.groups, generate_certificate: f.certificate, refresh_after_sign: f.singleUse,
  };
  const formError = h("div");
  const submit = h("button", { type: "submit", class: "button primary" }, "Create keypair");
  const form = h(
    "form",
    { class: "form", method: "post", novalidate: true, "aria-label": "Create keypair" },
    formError,
    Object.values(f).map((field) => field.wrap),
    h("div", { class: "actions" }, submit, h("a", { href: "#/keypairs", class: "button secondary" }, "Cancel")),
  );
  replace(root, pageHeader("Create keypair", { subtitle: "Choose the keypair's parameters. Dynamic keypairs keep them through every refresh." }), form);

  // --- adapting the form -------------------------------------------------------------------
  let locked = new Set();

  function profilesForTeam() {
    const team = f.team.value();
    if (!teamsOn || !team) return profiles.items;
    const chosen = teams.items.find((t) => t.id === team);
    return profiles.items.filter((p) => (p.team_ids || []).includes(team) || (chosen?.profile_ids || []).includes(p.id));
  }

  function refreshProfiles() {
    const current = f.profile.value();
    const list = profilesForTeam();
    const none = requireProfile ? [["", "Choose a profile"]] : [["", "No profile"]];
    f.profile.setOptions([...none, ...list.map((p) => [p.id, `${p.name || p.id}${p.mode === "fixed" ? " (fixed)" : ""}`])], current);
    f.profile.show(profiles.available || requireProfile);
    applyProfile();
  }

  function applyAlgorithm() {
    const algorithm = f.algorithm.value();
    f.keySize.show(algorithm === "RSA");
    f.curve.show(algorithm !== "RSA");
    if (algorithm === "EdDSA") {
      f.curve.setOptions(ED_CURVES, "Ed25519");
      f.curve.lock(true);
      f.curve.wrap.querySelector("label").textContent = "Key curve (EdDSA uses Ed25519)";
    } else if (algorithm === "ECDSA") {
      const current = f.curve.value();
      f.curve.setOptions(EC_CURVES, EC_CURVES.some(([v]) => v === current) ? current : "P-256");
      f.curve.lock(locked.has("curve"));
      f.curve.wrap.querySelector("label").textContent = "Key curve";
    }
  }

  function applyType() {
    f.singleUse.show(f.type.value() === "dynamic");
  }

  function applyAccess() {
    const restricted = f.access.value() === "restricted";
    f.users.show(restricted);
    f.groups.show(restricted);
  }

  // A fixed profile sets and locks its fields; a customizable one only fills them in.
  function applyProfile() {
    const profile = profiles.items.find((p) => p.id === f.profile.value());
    const settings = {
      type: f.type, algorithm: f.algorithm, key_size: f.keySize, curve: f.curve, category: f.category, storage: f.storage, status: f.status,
    };
    locked = new Set();
    for (const [name, field] of Object.entries(settings)) {
      const value = profile ? profile[name] : null;
      if (value !== null && value !== undefined && value !== "") {
        if (name === "algorithm") {
          field.set(value);
          applyAlgorithm();
        } else {
          field.set(String(value));
        }
        if (profile.mode === "fixed") locked.add(name);
      }
      field.lock(locked.has(name));
    }
    applyAlgorithm();
    applyType();
    profileNote.hidden = !locked.size;
    profileNote.textContent = locked.size ? `The fixed profile sets: ${[...locked].join(", ").replace(/_/g, " ")}. These fields are locked.` : "";
  }

  f.team.show(teamsOn);
  f.algorithm.control.addEventListener("change", applyAlgorithm);
  f.type.onChange(applyType);
  f.access.onChange(applyAccess);
  f.team.control.addEventListener("change", refreshProfiles);
  f.profile.control.addEventListener("change", applyProfile);
  refreshProfiles();
  applyAccess();
  view.ready();

  // --- submitting --------------------------------------------------------------------------
  function body() {
    const algorithm = f.algorithm.value();
    const request = {
      alias: f.alias.value(),
      type: f.type.value(),
      algorithm,
      category: f.category.value(),
      storage: f.storage.value(),
      status: f.status.value(),
      access: f.access.value(),
      generate_certificate: f.certificate.value(),
    };
    if (algorithm === "RSA") request.key_size = Number(f.keySize.value());
    else request.curve = f.curve.value();
    if (request.access === "restricted") {
      request.allowed_users = f.users.value();
      request.allowed_groups = f.groups.value();
    }
    if (teamsOn && f.team.value()) request.team_id = f.team.value();
    if (f.profile.value()) request.profile_id = f.profile.value();
    if (request.type === "dynamic") request.refresh_after_sign = f.singleUse.value();
    return request;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const field of Object.values(f)) field.setError("");
    replace(formError);
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const created = await api("POST", "keypairs", { body: body() });
      toast(`Keypair ${created.alias} created.`);
      view.navigate(`keypairs/${seg(created.id)}`);
    } catch (error) {
      showError(error);
    } finally {
      submit.disabled = false;
      submit.textContent = "Create keypair";
    }
  });

  function showError(error) {
    const name = error.code === "alias_taken" ? "alias" : error.details?.field;
    const field = byName[name];
    if (field && field.visible) {
      field.setError(error.code === "alias_taken" ? "This alias is already used by another keypair." : error.message);
      field.focusTarget().focus();
    } else {
      replace(formError, alertBox(error.message));
      formError.querySelector(".alert")?.setAttribute("tabindex", "-1");
      formError.querySelector(".alert")?.focus();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One keypair

/** #/keypairs/{id or alias}: fields, certificate, generations, refresh, suspend, delete. */
export async function detailPage(view) {
  const { ctx, root, args } = view;
  const [ref] = args;
  let timer = null;
  let poll = null;
  view.onLeave(() => {
    clearInterval(timer);
    clearTimeout(poll);
  });
  replace(root, loading("Loading the keypair"));

  let kp;
  try {
    kp = await api("GET", `keypairs/${seg(ref)}`);
  } catch (error) {
    const message = error instanceof ApiError && error.status === 404 ? `There is no keypair ${ref}.` : error.message;
    replace(root, pageHeader("Keypair not found"), alertBox(message), h("p", {}, link("#/keypairs", "Back to keypairs")));
    view.ready();
    return;
  }
  render(kp);
  view.ready();

  function render(keypair) {
    kp = keypair;
    clearInterval(timer);
    const manage = ctx.can("manage_keypair");
    const actions = [];
    if (manage && kp.type === "dynamic") actions.push(button("Refresh", refresh, { kind: "primary", "aria-describedby": "refresh-help" }));
    if (manage) {
      actions.push(kp.status === "online" ? button("Suspend", () => setStatus("offline")) : button("Unsuspend", () => setStatus("online")));
      actions.push(button("Delete", remove, { kind: "danger" }));
    }
    replace(
      root,
      h("p", { class: "breadcrumb" }, link("#/keypairs", "Keypairs"), " / ", kp.alias),
      pageHeader(kp.alias, { subtitle: `${label(kp.type)} keypair · ${algorithmLabel(kp)}`, actions }),
      manage && kp.type === "dynamic" ? h("p", { class: "visually-hidden", id: "refresh-help" }, "Replace the key and certificate now.") : null,
      kp.type === "dynamic" ? countdown() : null,
      h("section", { "aria-labelledby": "details-title" }, h("h2", { id: "details-title" }, "Details"), details()),
      certificateSection(),
      generationsSection(),
    );
  }

  function details() {
    return fieldList([
      ["Alias", kp.alias],
      ["ID", h("span", { class: "mono" }, kp.id)],
      ["Type", typeBadge(kp.type)],
      ["Algorithm", algorithmLabel(kp)],
      ["Status", statusBadge(kp.status)],
      ["Access", label(kp.access)],
      kp.access === "restricted" ? ["Allowed users", (kp.allowed_users || []).join(", ") || "None"] : null,
      kp.access === "restricted" ? ["Allowed user groups", (kp.allowed_groups || []).join(", ") || "None"] : null,
      ["Category", label(kp.category)],
      ["Storage", label(kp.storage)],
      kp.team_id ? ["Team", kp.team_id] : null,
      kp.profile_id ? ["Profile", kp.profile_id] : null,
      kp.type === "dynamic" ? ["New key after every signature", kp.refresh_after_sign ? "Yes" : "No"] : null,
      ["Current generation", String(kp.generation)],
      ["Key ID (SHA-256 of the public key)", h("span", { class: "mono break" }, kp.key_id)],
      ["Created", timeElement(h, kp.created_at)],
      ["Created by", kp.created_by],
      ["Last key change", timeElement(h, kp.refreshed_at)],
      kp.type === "dynamic" ? ["Next scheduled refresh", timeElement(h, kp.next_refresh_at)] : null,
    ]);
  }

  // The live countdown; when it runs out the page follows the scheduled refresh.
  function countdown() {
    const value = h("span", { class: "countdown-value" });
    const box = h("div", { class: "countdown", role: "timer", "aria-label": "Time until the next scheduled refresh" }, h("span", { class: "countdown-label" }, "Next scheduled refresh in"), value);
    const due = Date.parse(kp.next_refresh_at);
    const seenRefresh = kp.next_refresh_at;
    const tick = () => {
      const left = due - Date.now();
      if (Number.isNaN(due)) {
        value.textContent = "not scheduled";
      } else if (left > 0) {
        value.textContent = formatDuration(left);
      } else {
        value.textContent = "due now — waiting for the refresh";
        clearInterval(timer);
        followRefresh(seenRefresh, 0);
      }
    };
    tick();
    timer = setInterval(tick, 1000);
    return box;
  }

  function followRefresh(seen, attempt) {
    poll = setTimeout(async () => {
      try {
        const latest = await api("GET", `keypairs/${seg(kp.id)}`);
        if (latest.next_refresh_at !== seen) {
          render(latest);
          toast(`The scheduled refresh made generation ${latest.generation}.`);
          return;
        }
      } catch {
        // Keep following: a transient error should not stop the countdown page.
      }
      if (attempt < 40) followRefresh(seen, attempt + 1);
    }, 3000);
  }

  function certificateSection() {
    const cert = kp.certificate;
    const section = h("section", { "aria-labelledby": "certificate-title" }, h("h2", { id: "certificate-title" }, "Certificate"));
    if (!cert) {
      section.append(h("p", {}, "This keypair has no certificate."), h("div", { class: "actions" }, button("Download public key (PEM)", () => download(`${kp.alias}.pub.pem`, kp.public_key))));
      return section;
    }
    section.append(
      fieldList([
        ["Serial", h("span", { class: "mono break" }, cert.serial)],
        ["Issuer", cert.issuer],
        ["Valid from", timeElement(h, cert.not_before)],
        ["Expires", timeElement(h, cert.not_after)],
      ]),
      h(
        "div",
        { class: "actions" },
        button("Download certificate (PEM)", () => download(`${kp.alias}.pem`, cert.pem)),
        button("Download chain (PEM)", downloadChain),
        button("Download public key (PEM)", () => download(`${kp.alias}.pub.pem`, kp.public_key)),
      ),
      h("details", {}, h("summary", {}, "Show the certificate PEM"), h("pre", { class: "pem" }, cert.pem)),
    );
    return section;
  }

  async function downloadChain() {
    try {
      const anchors = await api("GET", "ca");
      const issuer = kp.category === "test" ? anchors.test : anchors.production;
      download(`${kp.alias}-chain.pem`, `${kp.certificate.pem.trim()}\n${String(issuer).trim()}\n`);
    } catch (error) {
      toast(`The chain could not be fetched: ${error.message}`);
    }
  }

  function generationsSection() {
    const body = h("div", { "aria-live": "polite" });
    const pager = new Pager(load);
    const section = h("section", { "aria-labelledby": "generations-title" }, h("h2", { id: "generations-title" }, "Generations"),
      h("p", { class: "hint" }, "Every key this keypair has had, newest first. Retired keys are destroyed; their public keys and certificates stay for verification."), body);
    async function load() {
      replace(body, loading("Loading generations"));
      try {
        const data = await api("GET", `keypairs/${seg(kp.id)}/generations`, { query: { limit: 10, next: pager.token } });
        pager.nextToken = data.next;
        const zone = timeZone();
        replace(
          body,
          dataTable({
            caption: "Generations",
            rows: data.items || [],
            columns: [
              { label: "Generation", cell: (g) => String(g.generation) },
              { label: "Key ID", class: "mono", cell: (g) => h("span", { title: g.key_id }, `${String(g.key_id).slice(0, 16)}…`) },
              { label: `Created (${zone})`, cell: (g) => timeElement(h, g.created_at) },
              { label: `Retired (${zone})`, cell: (g) => (g.retired_at ? timeElement(h, g.retired_at) : badge("Current", "ok")) },
              { label: `Certificate expires (${zone})`, cell: (g) => timeElement(h, g.certificate?.not_after) },
              {
                label: "Download",
                cell: (g) =>
                  g.certificate
                    ? button("Certificate", () => download(`${kp.alias}-gen${g.generation}.pem`, g.certificate.pem), { "aria-label": `Download the certificate of generation ${g.generation}` })
                    : button("Public key", () => download(`${kp.alias}-gen${g.generation}.pub.pem`, g.public_key), { "aria-label": `Download the public key of generation ${g.generation}` }),
              },
            ],
          }),
          pager.element("Generations"),
        );
      } catch (error) {
        replace(body, alertBox(error.message));
      }
    }
    load();
    return section;
  }

  async function refresh(event) {
    const trigger = event.currentTarget;
    trigger.disabled = true;
    trigger.textContent = "Refreshing…";
    try {
      const refreshed = await api("POST", `keypairs/${seg(kp.id)}/refresh`);
      render(refreshed);
      toast(`Refreshed: generation ${refreshed.generation}, a new key and certificate.`);
      root.querySelector("h1")?.focus();
    } catch (error) {
      trigger.disabled = false;
      trigger.textContent = "Refresh";
      toast(`Refresh failed: ${error.message}`);
    }
  }

  async function setStatus(status) {
    try {
      const updated = await api("PATCH", `keypairs/${seg(kp.id)}`, { body: { status } });
      render(updated);
      toast(status === "offline" ? `${updated.alias} is suspended (offline): it signs only in a release window.` : `${updated.alias} is online again.`);
      root.querySelector("h1")?.focus();
    } catch (error) {
      toast(`The status could not be changed: ${error.message}`);
    }
  }

  function remove() {
    confirmDialog({
      title: `Delete ${kp.alias}?`,
      message: "Its private key is destroyed at once and for good. Its generations and log entries are kept, and the alias becomes free.",
      confirmText: "Delete keypair",
      expected: kp.alias,
      danger: true,
      onConfirm: async () => {
        await api("DELETE", `keypairs/${seg(kp.id)}`);
        toast(`Keypair ${kp.alias} deleted.`);
        view.navigate("keypairs");
      },
    });
  }
}
