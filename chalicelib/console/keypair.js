// One keypair: its fields, certificate, generations; refresh with a live countdown, suspend, delete.

import { ApiError, api, seg } from "./api.js";
import { algorithmLabel, formatDuration, label, timeElement, timeZone } from "./format.js";
import { statusBadge, typeBadge } from "./keypairs.js";
import { Names, lists } from "./resource.js";
import { Pager, alertBox, badge, button, confirmDialog, dataTable, download, fieldList, h, loading, pageHeader, replace, toast } from "./ui.js";

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
    replace(root, pageHeader("Keypair not found"), alertBox(message), h("p", {}, h("a", { href: "#/keypairs" }, "Back to keypairs")));
    view.ready();
    return;
  }
  const names = await accessNames(kp);
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
      h("p", { class: "breadcrumb" }, h("a", { href: "#/keypairs" }, "Keypairs"), " / ", kp.alias),
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
      kp.access === "restricted" ? ["Allowed users", kp.allowed_users?.length ? names.users.list(kp.allowed_users) : "None"] : null,
      kp.access === "restricted" ? ["Allowed user groups", kp.allowed_groups?.length ? names.groups.list(kp.allowed_groups) : "None"] : null,
      ["Category", label(kp.category)],
      ["Storage", label(kp.storage)],
      kp.team_id ? ["Team", names.teams.of(kp.team_id)] : null,
      kp.profile_id ? ["Profile", names.profiles.of(kp.profile_id)] : null,
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

/** Names for the ids the keypair names (team, profile, allowed users and groups); ids where a list is not readable. */
async function accessNames(kp) {
  const wanted = [];
  if (kp.team_id) wanted.push("teams");
  if (kp.profile_id) wanted.push("keypair-profiles");
  if (kp.access === "restricted") wanted.push("users", "groups");
  const found = await lists(...wanted);
  const names = (path) => new Names(found[path]?.items || []);
  return { teams: names("teams"), profiles: names("keypair-profiles"), users: names("users"), groups: names("groups") };
}
