// Keypairs: the list with its filters and paging, and what the keypair pages share.

import { seg } from "./api.js";
import { algorithmLabel, label, timeElement, timeZone } from "./format.js";
import { listPage } from "./listpage.js";
import { badge, dataTable, h, selectField, textField } from "./ui.js";

const PAGE_SIZE = 25;
const ANY = [["", "Any"]];
const FILTERS = ["alias", "type", "status", "storage", "algorithm", "category"];

/** A link to a keypair's page. */
const keypairLink = (kp, text = kp.alias) => h("a", { href: `#/keypairs/${seg(kp.id)}` }, text);
export const statusBadge = (status) => badge(label(status), status === "online" ? "ok" : "warn");
export const typeBadge = (type) => badge(label(type), type === "dynamic" ? "accent" : "");

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
      { label: "Alias", class: "nowrap", cell: (kp) => keypairLink(kp) },
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
