// Administration > Users: users with their roles and extra permissions, and their API keys (a new key
// is shown once, on this page only: never stored, never in a URL).

import { api, seg } from "./api.js";
import { humanize, localInputToRfc3339, timeElement, timeZone } from "./format.js";
import { Names, createdColumn, lists, resourcePages } from "./resource.js";
import {
  alertBox, badge, button, checkboxList, confirmDialog, dataTable, fieldList, h, loading, replace, showApiError, textField, toast,
} from "./ui.js";

export const ROLES = [
  ["admin", "Admin — everything, including users, their API keys and the account settings"],
  ["lead", "Lead — keypairs, signing, teams, profiles and release windows"],
  ["developer", "Developer — create keypairs, sign, read keypairs and the logs"],
  ["auditor", "Auditor — read keypairs and the logs"],
];
const PERMISSIONS = [
  "generate_keypair", "view_keypair", "manage_keypair", "sign", "view_audit_log",
  "manage_users", "manage_teams", "manage_profiles", "manage_releases", "manage_account",
];

const roleNames = (roles) => (roles && roles.length ? roles.map(humanize).join(", ") : "No role");

export const userRoutes = resourcePages({
  title: "Users",
  singular: "user",
  subtitle: "Who may use this account, with which roles. A user signs in with an API key issued on its page.",
  path: "users",
  route: "admin/users",
  permission: "manage_users",
  typedDelete: true,
  deleteMessage: () => "The user's API keys are revoked at once, and it leaves its groups and teams.",
  lookups: async () => {
    const { groups } = await lists("groups");
    return { groups: new Names(groups.items) };
  },
  columns: ({ groups }) => [
    { label: "Email", cell: (u) => u.email || "—" },
    { label: "Roles", cell: (u) => roleNames(u.roles) },
    { label: "Groups", cell: (u) => groups.list(u.group_ids) },
    createdColumn,
  ],
  form: (lookups, user) => {
    const fields = {
      name: textField({ name: "name", label: "Name", value: user?.name || "", autocomplete: "off", maxlength: "100" }),
      email: textField({ name: "email", label: "Email (optional)", type: "email", value: user?.email || "", autocomplete: "off", maxlength: "254" }),
      roles: checkboxList({ name: "roles", legend: "Roles", items: ROLES, hint: "A user may do what any of its roles allows." }),
      permissions: checkboxList({
        name: "permissions",
        legend: "Extra permissions",
        items: PERMISSIONS.map((p) => [p, humanize(p)]),
        hint: "Granted beyond the roles; usually none.",
      }),
    };
    fields.roles.set(user ? user.roles : ["developer"]);
    fields.permissions.set(user?.permissions || []);
    const body = () => ({
      name: fields.name.value(),
      email: fields.email.value() || null,
      roles: fields.roles.value(),
      permissions: fields.permissions.value(),
    });
    return { fields, body };
  },
  summary: (user, { groups }) =>
    fieldList([
      ["User ID", h("span", { class: "mono" }, user.id)],
      ["Roles", roleNames(user.roles)],
      ["May", (user.effective_permissions || []).map(humanize).join(", ") || "Nothing"],
      ["Groups", groups.list(user.group_ids)],
      ["Created", timeElement(h, user.created_at)],
    ]),
  extra: (view, user) => apiKeysSection(view, user),
});

function keyState(key) {
  if (key.revoked_at) return badge("Revoked", "bad");
  if (key.expires_at && new Date(key.expires_at) <= new Date()) return badge("Expired", "warn");
  return badge("Active", "ok");
}

/** The user's API keys: the list (never a secret), a form that issues one, and the new key shown once. */
function apiKeysSection(view, user) {
  const issued = h("div");
  const listSlot = h("div", { "aria-live": "polite" });
  const nameField = textField({ name: "key-name", label: "Key name", hint: "What the key is for, e.g. “CI release job”.", autocomplete: "off", maxlength: "100" });
  const expires = textField({
    name: "expires_at",
    label: `Expires (${timeZone()}, optional)`,
    type: "datetime-local",
    step: "1",
    hint: "Leave empty for a key that does not expire.",
  });
  const formError = h("div");
  const submit = h("button", { type: "submit", class: "button primary" }, "Create API key");
  const form = h(
    "form",
    { class: "form compact-form", method: "post", novalidate: true, "aria-label": `Create an API key for ${user.name}` },
    formError, nameField.wrap, expires.wrap, h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    nameField.setError("");
    expires.setError("");
    replace(formError);
    submit.disabled = true;
    try {
      const body = { name: nameField.value() || null };
      if (expires.value()) body.expires_at = localInputToRfc3339(expires.value());
      const created = await api("POST", `users/${seg(user.id)}/api-keys`, { body });
      nameField.set("");
      expires.set("");
      showOnce(created);
      await load();
    } catch (error) {
      showApiError(error, { name: nameField, expires_at: expires }, formError);
    } finally {
      submit.disabled = false;
    }
  });

  // The secret lives in this element only; "Done" (or leaving the page) removes it for good.
  function showOnce(created) {
    const titleId = `new-key-title-${created.id}`;
    const input = h("input", { type: "text", id: `new-key-${created.id}`, value: created.key, readOnly: true, spellcheck: "false", autocomplete: "off", class: "mono" });
    const copy = button("Copy key", async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(created.key);
        toast("The key is copied.");
      } catch {
        toast("Copy it by hand: the key is selected.");
      }
    });
    const done = button("Done", () => {
      replace(issued);
      nameField.control.focus();
    }, { kind: "primary" });
    const box = h(
      "div",
      { class: "new-key", role: "region", "aria-labelledby": titleId, tabindex: "-1" },
      h("h3", { id: titleId }, `New API key${created.name ? ` “${created.name}”` : ""}`),
      h("p", {}, "Copy the key now: this is the only time it is shown. rotasign keeps only its hash."),
      h("div", { class: "field" }, h("label", { for: input.id }, `API key for ${user.name}`), input),
      h("div", { class: "actions" }, copy, done),
    );
    replace(issued, box);
    box.focus();
  }

  async function load() {
    replace(listSlot, loading("Loading the API keys"));
    try {
      const data = await api("GET", `users/${seg(user.id)}/api-keys`);
      const zone = timeZone();
      replace(
        listSlot,
        dataTable({
          caption: "API keys",
          empty: "This user has no API key yet.",
          rows: data.items || [],
          columns: [
            { label: "Name", cell: (k) => k.name || "—" },
            { label: "Prefix", class: "mono", cell: (k) => k.prefix },
            { label: "State", cell: keyState },
            { label: `Created (${zone})`, cell: (k) => timeElement(h, k.created_at) },
            { label: `Expires (${zone})`, cell: (k) => (k.expires_at ? timeElement(h, k.expires_at) : "Never") },
            { label: `Last used (${zone})`, cell: (k) => (k.last_used_at ? timeElement(h, k.last_used_at) : "Never") },
            { label: "Actions", cell: (k) => (k.revoked_at ? "—" : button("Revoke", () => revoke(k), { kind: "danger", "aria-label": `Revoke key ${k.name || k.prefix}` })) },
          ],
        }),
      );
    } catch (error) {
      replace(listSlot, alertBox(error.message));
    }
  }

  function revoke(key) {
    confirmDialog({
      title: `Revoke key ${key.name || key.prefix}?`,
      message: "Requests with this key are refused within a few seconds. This cannot be undone.",
      confirmText: "Revoke key",
      danger: true,
      onConfirm: async () => {
        await api("DELETE", `users/${seg(user.id)}/api-keys/${seg(key.id)}`);
        toast(`Key ${key.name || key.prefix} revoked.`);
        await load();
      },
    });
  }

  load();
  return h("section", { "aria-labelledby": "keys-title" }, h("h2", { id: "keys-title" }, "API keys"), issued, listSlot, h("h3", {}, "Create an API key"), form);
}
