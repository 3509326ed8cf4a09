// Administration > Account settings: the switches of PATCH /account.

import { api } from "./api.js";
import { timeElement } from "./format.js";
import { alertBox, checkboxField, fieldList, h, loading, pageHeader, replace, showApiError, toast } from "./ui.js";

const SETTINGS = [
  ["teams_enabled", "Teams", "Keypairs belong to teams; a user sees its teams' keypairs (admins see all)."],
  ["require_keypair_profile", "Require a keypair profile", "Every new keypair must name a keypair profile."],
  ["public_tsa", "Public time-stamping", "The RFC 3161 time-stamp route answers without an API key."],
];

/** #/admin/account */
export async function accountPage(view) {
  const { root, ctx } = view;
  replace(root, pageHeader("Account settings"), loading("Loading the settings"));
  let account;
  try {
    account = await api("GET", "account");
  } catch (error) {
    replace(root, pageHeader("Account settings"), alertBox(error.message));
    view.ready();
    return;
  }
  const fields = Object.fromEntries(SETTINGS.map(([name, text, hint]) => [name, checkboxField({ name, label: text, hint, checked: Boolean(account[name]) })]));
  const formError = h("div");
  const submit = h("button", { type: "submit", class: "button primary" }, "Save settings");
  const form = h(
    "form",
    { class: "form", method: "post", novalidate: true, "aria-label": "Account settings" },
    formError,
    h("fieldset", { class: "field" }, h("legend", {}, "Settings"), Object.values(fields).map((f) => f.wrap)),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(formError);
    for (const field of Object.values(fields)) field.setError("");
    const changes = {};
    for (const [name, field] of Object.entries(fields)) if (field.value() !== Boolean(account[name])) changes[name] = field.value();
    if (!Object.keys(changes).length) {
      toast("Nothing to save.");
      return;
    }
    submit.disabled = true;
    try {
      account = await api("PATCH", "account", { body: changes });
      // The rest of the console (the Team field, the Teams page) follows the new settings at once.
      ctx.account = { ...ctx.account, ...account };
      toast("Account settings saved.");
    } catch (error) {
      showApiError(error, fields, formError);
    } finally {
      submit.disabled = false;
    }
  });
  replace(
    root,
    pageHeader("Account settings", { subtitle: "Settings that apply to every user of the account." }),
    fieldList([
      ["Account name", account.name],
      ["Account ID", h("span", { class: "mono" }, account.id)],
      ["Created", timeElement(h, account.created_at)],
    ]),
    form,
  );
  view.ready();
}
