// Administration > Release windows: when offline keypairs may sign, for whom, and how many signatures
// (the budget, with how much of it is used).

import { localInputToRfc3339, rfc3339ToLocalInput, timeElement, timeZone } from "./format.js";
import { Names, lists, resourcePages } from "./resource.js";
import { badge, checkboxList, fieldList, h, textField } from "./ui.js";

function state(window) {
  const now = Date.now();
  if (new Date(window.ends_at).getTime() <= now) return badge("Closed", "");
  if (new Date(window.starts_at).getTime() > now) return badge("Upcoming", "accent");
  if (window.max_signatures !== null && window.signatures_used >= window.max_signatures) return badge("Budget used up", "warn");
  return badge("Open", "ok");
}

/** "3 of 10 signatures" with a progress bar, or "3 signatures (no limit)". */
function budget(window) {
  const used = window.signatures_used || 0;
  if (window.max_signatures === null || window.max_signatures === undefined) {
    return h("span", { class: "budget" }, `${used} signature${used === 1 ? "" : "s"} (no limit)`);
  }
  const text = `${used} of ${window.max_signatures} signatures`;
  return h(
    "span",
    { class: "budget" },
    h("span", { class: "budget-text" }, text),
    h("progress", { max: String(window.max_signatures), value: String(used), "aria-label": `Budget used: ${text}` }),
  );
}

export const windowRoutes = resourcePages({
  title: "Release windows",
  singular: "release window",
  subtitle: "Offline keypairs sign only inside an open window that names them (and the signer, when it names users).",
  path: "release-windows",
  route: "admin/release-windows",
  permission: "manage_releases",
  deleteLabel: "Close",
  deletedText: "closed",
  deleteMessage: () => "Signing in this window stops at once.",
  lookups: async () => {
    const { keypairs, users } = await lists("keypairs", "users");
    return {
      keypairs: keypairs.items,
      users: users.items,
      keypairNames: new Names(keypairs.items, (kp) => kp.alias || kp.id),
      userNames: new Names(users.items),
    };
  },
  columns: ({ keypairNames, userNames }) => {
    const zone = timeZone();
    return [
      { label: "Keypairs", cell: (w) => keypairNames.list(w.keypair_ids) },
      { label: "Signers", cell: (w) => (w.user_ids?.length ? userNames.list(w.user_ids) : "Anyone who may sign") },
      { label: `Opens (${zone})`, cell: (w) => timeElement(h, w.starts_at) },
      { label: `Closes (${zone})`, cell: (w) => timeElement(h, w.ends_at) },
      { label: "State", cell: state },
      { label: "Budget used", cell: budget },
    ];
  },
  summary: (window, { keypairNames, userNames }) =>
    fieldList([
      ["Window ID", h("span", { class: "mono" }, window.id)],
      ["State", state(window)],
      ["Budget used", budget(window)],
      ["Keypairs", keypairNames.list(window.keypair_ids)],
      ["Signers", window.user_ids?.length ? userNames.list(window.user_ids) : "Anyone who may sign"],
      ["Opens", timeElement(h, window.starts_at)],
      ["Closes", timeElement(h, window.ends_at)],
      ["Created by", h("span", { class: "mono" }, userNames.of(window.created_by))],
    ]),
  form: ({ keypairs, users }, window) => {
    const zone = timeZone();
    const now = new Date();
    const fields = {
      name: textField({ name: "name", label: "Window name", value: window?.name || "", autocomplete: "off", maxlength: "100", hint: "E.g. the release it is for." }),
      keypair_ids: checkboxList({
        name: "keypair_ids",
        legend: "Keypairs",
        items: keypairs.map((kp) => [kp.id, `${kp.alias} (${kp.status})`]),
        empty: "No keypairs yet.",
        hint: "Online keypairs sign at any time; the window matters to the offline ones.",
      }),
      user_ids: checkboxList({
        name: "user_ids",
        legend: "Signers",
        items: users.map((u) => [u.id, u.name || u.id]),
        empty: "No users to choose from.",
        hint: "None chosen: anyone who may sign with the keypair.",
      }),
      starts_at: textField({
        name: "starts_at",
        label: `Opens (${zone})`,
        type: "datetime-local",
        step: "1",
        value: rfc3339ToLocalInput(window?.starts_at || now.toISOString()),
      }),
      ends_at: textField({
        name: "ends_at",
        label: `Closes (${zone})`,
        type: "datetime-local",
        step: "1",
        value: rfc3339ToLocalInput(window?.ends_at || new Date(now.getTime() + 3600_000).toISOString()),
      }),
      max_signatures: textField({
        name: "max_signatures",
        label: "Signature budget (optional)",
        type: "number",
        min: "1",
        step: "1",
        inputmode: "numeric",
        value: window?.max_signatures ? String(window.max_signatures) : "",
        hint: "How many signatures the window allows in all; empty for no limit.",
      }),
    };
    fields.keypair_ids.set(window?.keypair_ids || []);
    fields.user_ids.set(window?.user_ids || []);
    const body = () => {
      const max = fields.max_signatures.value();
      return {
        name: fields.name.value(),
        keypair_ids: fields.keypair_ids.value(),
        user_ids: fields.user_ids.value(),
        starts_at: localInputToRfc3339(fields.starts_at.value()) || null,
        ends_at: localInputToRfc3339(fields.ends_at.value()) || null,
        max_signatures: max === "" ? null : Number(max),
      };
    };
    return { fields, body };
  },
});
