// Shared pieces of the console's pages: headers, alerts, tables, pagers, form fields, dialogs, downloads.

import { append, h, replace, uid } from "./dom.js";

/** A page title (focused after navigation, so keyboard and screen-reader users land on it) and its actions. */
export function pageHeader(title, { subtitle, actions = [] } = {}) {
  return h(
    "div",
    { class: "page-header" },
    h("div", { class: "page-title" }, h("h1", { tabindex: "-1" }, title), subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
    actions.length ? h("div", { class: "actions" }, actions) : null,
  );
}

/** An error (or other) message announced to assistive technology. */
export function alertBox(message, kind = "error") {
  return h("div", { class: `alert ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
}

let toastTimer = null;

/** A short confirmation in the polite live region at the bottom of the page. */
export function toast(message) {
  const region = document.getElementById("toast");
  replace(region, h("span", {}, message));
  region.classList.add("visible");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    region.classList.remove("visible");
    replace(region);
  }, 6000);
}

/** A loading placeholder. */
export function loading(what = "Loading") {
  return h("p", { class: "loading", role: "status" }, `${what}…`);
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}`.trim() }, text);
}

export function button(text, onClick, { kind = "secondary", ...props } = {}) {
  return h("button", { type: "button", class: `button ${kind}`, onClick, ...props }, text);
}

/**
 * A table in a keyboard-scrollable region: columns [{label, cell(row) → node|text, class}].
 */
export function dataTable({ caption, columns, rows, empty = "Nothing to show." }) {
  const table = h(
    "table",
    { class: "data" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h(
      "tbody",
      {},
      rows.length
        ? rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.class, "data-label": c.label }, c.cell(row)))))
        : h("tr", {}, h("td", { colspan: String(columns.length), class: "empty" }, empty)),
    ),
  );
  return h("div", { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" }, table);
}

/**
 * Previous/next paging over `next` tokens. The tokens stay in memory (never in the URL): `pages` is
 * the list of tokens that start each page seen so far, `pages[0]` = null for the first page.
 */
export class Pager {
  constructor(onChange) {
    this.onChange = onChange;
    this.reset();
  }

  reset() {
    this.pages = [null];
    this.index = 0;
    this.nextToken = null;
  }

  get token() {
    return this.pages[this.index];
  }

  element(label) {
    const prev = button("Previous page", () => {
      this.index -= 1;
      this.onChange();
    }, { disabled: this.index === 0 });
    const next = button("Next page", () => {
      this.pages = this.pages.slice(0, this.index + 1).concat([this.nextToken]);
      this.index += 1;
      this.onChange();
    }, { disabled: !this.nextToken });
    return h("nav", { class: "pager", "aria-label": `${label} pages` }, prev, h("span", { class: "page-number" }, `Page ${this.index + 1}`), next);
  }
}

// ---------------------------------------------------------------------------------------------
// Form fields: each has a label, an optional hint and an error slot tied to it by aria-describedby.

class Field {
  constructor(name, wrap, control, hintId) {
    this.name = name;
    this.wrap = wrap;
    this.control = control;
    this.errorEl = h("p", { class: "field-error", id: uid(`${name}-error`), hidden: true });
    this.hintId = hintId;
    wrap.append(this.errorEl);
    this.describe(control);
  }

  describe(control) {
    control.setAttribute("aria-describedby", [this.hintId, this.errorEl.id].filter(Boolean).join(" "));
  }

  setError(message) {
    this.errorEl.textContent = message || "";
    this.errorEl.hidden = !message;
    this.wrap.classList.toggle("invalid", Boolean(message));
    this.focusTarget().setAttribute("aria-invalid", message ? "true" : "false");
  }

  focusTarget() {
    return this.control;
  }

  show(visible) {
    this.wrap.hidden = !visible;
  }

  get visible() {
    return !this.wrap.hidden;
  }
}

function hintElement(hint) {
  if (!hint) return [null, null];
  const id = uid("hint");
  return [h("p", { class: "hint", id }, hint), id];
}

/** A text input with its label. */
export function textField({ name, label, value = "", hint, type = "text", ...props }) {
  const id = uid(name);
  const input = h("input", { id, name, type, value, ...props });
  const [hintEl, hintId] = hintElement(hint);
  const wrap = h("div", { class: "field" }, h("label", { for: id }, label), hintEl, input);
  const field = new Field(name, wrap, input, hintId);
  field.value = () => input.value.trim();
  field.set = (v) => {
    input.value = v ?? "";
  };
  return field;
}

/** A select with its label: options [[value, text], …]. */
export function selectField({ name, label, options, value = "", hint, ...props }) {
  const id = uid(name);
  const select = h("select", { id, name, ...props });
  const [hintEl, hintId] = hintElement(hint);
  const wrap = h("div", { class: "field" }, h("label", { for: id }, label), hintEl, select);
  const field = new Field(name, wrap, select, hintId);
  field.setOptions = (choices, selected) => {
    replace(select, choices.map(([v, text]) => h("option", { value: v }, text)));
    if (selected !== undefined && choices.some(([v]) => v === selected)) select.value = selected;
  };
  field.setOptions(options, value);
  field.value = () => select.value;
  field.set = (v) => {
    select.value = v ?? "";
  };
  field.lock = (locked) => {
    select.disabled = locked;
  };
  return field;
}

/** A group of radio buttons in a fieldset: options [[value, text, hint?], …]. */
export function radioGroup({ name, legend, options, value, hint }) {
  const [hintEl, hintId] = hintElement(hint);
  const inputs = [];
  const choices = options.map(([v, text, choiceHint]) => {
    const id = uid(`${name}-${v}`);
    const choiceHintId = choiceHint ? `${id}-hint` : null;
    const input = h("input", { type: "radio", id, name, value: v, checked: v === value, "aria-describedby": choiceHintId });
    inputs.push(input);
    const choiceHintEl = choiceHint ? h("span", { class: "choice-hint", id: choiceHintId }, choiceHint) : null;
    return h("div", { class: "choice" }, input, h("div", { class: "choice-text" }, h("label", { for: id, class: "choice-label" }, text), choiceHintEl));
  });
  const wrap = h("fieldset", { class: "field radios" }, h("legend", {}, legend), hintEl, h("div", { class: "choices" }, choices));
  const field = new Field(name, wrap, wrap, hintId);
  field.inputs = inputs;
  field.value = () => inputs.find((i) => i.checked)?.value ?? "";
  field.set = (v) => {
    for (const input of inputs) input.checked = input.value === v;
  };
  field.lock = (locked) => {
    for (const input of inputs) input.disabled = locked;
  };
  field.onChange = (handler) => inputs.forEach((i) => i.addEventListener("change", handler));
  field.focusTarget = () => inputs.find((i) => i.checked) || inputs[0];
  return field;
}

/** A single checkbox with its label. */
export function checkboxField({ name, label, checked = false, hint }) {
  const id = uid(name);
  const input = h("input", { type: "checkbox", id, name, checked });
  const [hintEl, hintId] = hintElement(hint);
  const wrap = h("div", { class: "field checkbox" }, h("div", { class: "choice" }, input, h("label", { for: id }, label)), hintEl);
  const field = new Field(name, wrap, input, hintId);
  field.value = () => input.checked;
  field.set = (v) => {
    input.checked = Boolean(v);
  };
  return field;
}

/** Several checkboxes in a fieldset (allowed users, allowed groups): items [[value, text], …]. */
export function checkboxList({ name, legend, items = [], empty = "None to choose from.", hint }) {
  const [hintEl, hintId] = hintElement(hint);
  const list = h("div", { class: "checklist" });
  const wrap = h("fieldset", { class: "field" }, h("legend", {}, legend), hintEl, list);
  const field = new Field(name, wrap, wrap, hintId);
  field.setItems = (choices) => {
    replace(
      list,
      choices.length
        ? choices.map(([v, text]) => {
            const id = uid(name);
            return h("div", { class: "choice" }, h("input", { type: "checkbox", id, name, value: v }), h("label", { for: id }, text));
          })
        : h("p", { class: "hint" }, empty),
    );
  };
  field.setItems(items);
  field.value = () => [...list.querySelectorAll("input:checked")].map((i) => i.value);
  field.set = (values) => {
    const chosen = new Set(values || []);
    for (const input of list.querySelectorAll("input")) input.checked = chosen.has(input.value);
  };
  field.focusTarget = () => list.querySelector("input") || wrap;
  return field;
}

/**
 * Show an API error where it belongs: next to the field named by `details.field` (when that field is
 * shown), else in the form's error slot. `fields` maps API field names to fields.
 */
export function showApiError(error, fields, slot, fieldName = error.details?.field) {
  const field = fields[fieldName];
  if (field && field.visible) {
    field.setError(error.message);
    field.focusTarget().focus();
    return;
  }
  replace(slot, alertBox(error.message));
  const alert = slot.querySelector(".alert");
  alert?.setAttribute("tabindex", "-1");
  alert?.focus();
}

// ---------------------------------------------------------------------------------------------

/** A filter bar: a search form whose fields are read on submit. */
export function filterBar({ label, fields, onApply, onClear }) {
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": label, method: "post", novalidate: true },
    fields.map((f) => f.wrap),
    h("div", { class: "filter-actions" }, h("button", { type: "submit", class: "button primary" }, "Apply filters"), button("Clear", onClear)),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = {};
    for (const field of fields) values[field.name] = field.value();
    onApply(values);
  });
  return form;
}

/** A definition list of [term, value] pairs (values as nodes or text). */
export function fieldList(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs.filter(Boolean).map(([term, value]) => h("div", { class: "pair" }, h("dt", {}, term), h("dd", {}, value ?? "—"))),
  );
}

/** Save text as a file through a temporary blob: URL (no data ever travels in a URL to a server). */
export function download(filename, text, type = "application/x-pem-file") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/**
 * A modal confirmation. With `expected`, the confirm button stays disabled until the user types it.
 * `onConfirm` returns a promise; its rejection message is shown in the dialog.
 */
export function confirmDialog({ title, message, confirmText, expected, danger = false, onConfirm }) {
  const titleId = uid("dialog-title");
  const errorSlot = h("div");
  const confirm = h("button", { type: "submit", class: `button ${danger ? "danger" : "primary"}`, disabled: Boolean(expected) }, confirmText);
  const cancel = button("Cancel", () => dialog.close());
  let input = null;
  let inputField = null;
  if (expected) {
    inputField = textField({ name: "confirm", label: `Type ${expected} to confirm`, autocomplete: "off", spellcheck: "false" });
    input = inputField.control;
    input.addEventListener("input", () => {
      confirm.disabled = input.value !== expected;
    });
  }
  const form = h(
    "form",
    { method: "dialog", class: "dialog-body" },
    h("h2", { id: titleId }, title),
    h("p", {}, message),
    inputField ? inputField.wrap : null,
    errorSlot,
    h("div", { class: "actions" }, cancel, confirm),
  );
  const dialog = h("dialog", { "aria-labelledby": titleId, class: "dialog" }, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (expected && input.value !== expected) return;
    confirm.disabled = true;
    try {
      await onConfirm();
      dialog.close();
    } catch (error) {
      replace(errorSlot, alertBox(error.message));
      confirm.disabled = false;
    }
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  (input || cancel).focus();
  return dialog;
}

export { append, h, replace };
