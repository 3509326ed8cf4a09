// The administration pages share one shape: a paged list of an API collection, a form that creates one
// item, the same form filled in to change it, and delete. Each kind (users, groups, teams, profiles,
// release windows) gives a spec; this module turns it into its three pages.

import { ApiError, api, optionalList, seg } from "./api.js";
import { humanize, timeElement } from "./format.js";
import { Pager, alertBox, confirmDialog, dataTable, h, loading, pageHeader, replace, showApiError, toast } from "./ui.js";

const PAGE_SIZE = 50;

/** id → display name, for the id lists the API returns (member_ids, keypair_ids…). */
export class Names {
  constructor(items = [], name = (item) => item.name || item.id) {
    this.map = new Map(items.map((item) => [item.id, name(item)]));
  }

  of(id) {
    return this.map.get(id) || id;
  }

  /** A list of ids as names, or a dash. */
  list(ids) {
    return ids && ids.length ? ids.map((id) => this.of(id)).join(", ") : "—";
  }
}

/** A user as a choice in a form: "Ada (ada@example.com)", or its name alone. */
export const userLabel = (u) => (u.email ? `${u.name || u.id} (${u.email})` : u.name || u.id);

/** The lists the form and the table need (each an {available, items} from optionalList). */
export async function lists(...paths) {
  return Object.fromEntries(await Promise.all(paths.map(async (p) => [p, await optionalList(p)])));
}

/** A "Created" column. */
export const createdColumn = { label: "Created", cell: (item) => timeElement(h, item.created_at) };

/**
 * The pages of one kind. spec: {
 *   title: "Users", singular: "user", subtitle, path (API collection), route (console route),
 *   lookups(ctx) → promise of what columns/form need, columns(lookups) → [{label, cell}],
 *   form(lookups, item | null, ctx) → {fields: {apiName: Field}, body(item | null) → request body},
 *   notice(ctx) → node | null (shown above list and forms), off(ctx) → true when the API refuses the kind, extra(view, item, lookups) → node | promise,
 *   summary(item, lookups) → node, afterCreate: "item" | "list", errorField(error) → field name,
 *   deleteLabel, deletedText, deleteMessage(item), typedDelete
 * }
 */
export function resourcePages(spec) {
  const name = (item) => item.name || item.id;
  const itemLink = (item) => h("a", { href: `#/${spec.route}/${seg(item.id)}` }, name(item));

  async function listPage(view) {
    const { root, ctx } = view;
    const results = h("div", { class: "results", "aria-live": "polite" });
    const pager = new Pager(load);
    const off = spec.off?.(ctx);
    const actions = off ? [] : [h("a", { href: `#/${spec.route}/new`, class: "button primary" }, `Create ${spec.singular}`)];
    replace(root, pageHeader(spec.title, { subtitle: spec.subtitle, actions }), spec.notice?.(ctx), results);
    if (off) {
      view.ready();
      return;
    }
    const lookups = await spec.lookups(ctx);
    view.ready();

    async function load() {
      results.setAttribute("aria-busy", "true");
      replace(results, loading(`Loading ${spec.title.toLowerCase()}`));
      try {
        const data = await api("GET", spec.path, { query: { limit: PAGE_SIZE, next: pager.token } });
        pager.nextToken = data.next;
        const columns = [{ label: "Name", class: "nowrap", cell: itemLink }, ...spec.columns(lookups)];
        replace(results, dataTable({ caption: spec.title, columns, rows: data.items || [], empty: `No ${spec.singular} yet.` }), pager.element(spec.title));
      } catch (error) {
        replace(results, alertBox(error.message));
      } finally {
        results.removeAttribute("aria-busy");
      }
    }
    await load();
  }

  /** The form of a new item (item null) or of an existing one, wired to POST or PATCH. */
  function editor(view, lookups, item, onSaved) {
    const { fields, body } = spec.form(lookups, item, view.ctx);
    const formError = h("div");
    const verb = item ? "Save changes" : `Create ${spec.singular}`;
    const submit = h("button", { type: "submit", class: "button primary" }, verb);
    const label = item ? `Change ${spec.singular} ${name(item)}` : `Create ${spec.singular}`;
    const form = h(
      "form",
      { class: "form", method: "post", novalidate: true, "aria-label": label },
      formError,
      Object.values(fields).map((f) => f.wrap),
      h("div", { class: "actions" }, submit, item ? null : h("a", { href: `#/${spec.route}`, class: "button secondary" }, "Cancel")),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      for (const field of Object.values(fields)) field.setError("");
      replace(formError);
      submit.disabled = true;
      try {
        const saved = item
          ? await api("PATCH", `${spec.path}/${seg(item.id)}`, { body: body(item) })
          : await api("POST", spec.path, { body: body(null) });
        onSaved(saved);
      } catch (error) {
        showApiError(error, fields, formError, spec.errorField?.(error) ?? error.details?.field);
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  async function newPage(view) {
    const { root, ctx } = view;
    const title = `Create ${spec.singular}`;
    replace(root, pageHeader(title), loading("Loading the form"));
    const lookups = await spec.lookups(ctx);
    const form = editor(view, lookups, null, (created) => {
      toast(`${humanize(spec.singular)} ${name(created)} created.`);
      view.navigate(spec.afterCreate === "list" ? spec.route : `${spec.route}/${seg(created.id)}`);
    });
    replace(root, breadcrumb("New"), pageHeader(title, { subtitle: spec.subtitle }), spec.notice?.(ctx), form);
    view.ready();
  }

  async function itemPage(view) {
    const { root, ctx, args } = view;
    const [id] = args;
    replace(root, loading(`Loading the ${spec.singular}`));
    let item;
    let lookups;
    try {
      [item, lookups] = await Promise.all([api("GET", `${spec.path}/${seg(id)}`), spec.lookups(ctx)]);
    } catch (error) {
      const missing = error instanceof ApiError && error.status === 404;
      replace(root, breadcrumb(id), pageHeader(`${humanize(spec.singular)} not found`), alertBox(missing ? `There is no ${spec.singular} ${id}.` : error.message));
      view.ready();
      return;
    }
    const render = async (current) => {
      item = current;
      const remove = h("button", { type: "button", class: "button danger", onClick: () => removeDialog() }, spec.deleteLabel || "Delete");
      const form = editor(view, lookups, item, (saved) => {
        toast(`${humanize(spec.singular)} ${name(saved)} saved.`);
        render(saved);
      });
      const extra = spec.extra ? await spec.extra(view, item, lookups) : null;
      replace(
        root,
        breadcrumb(name(item)),
        pageHeader(name(item), { subtitle: `${humanize(spec.singular)} ${item.id}`, actions: [remove] }),
        spec.notice?.(ctx),
        spec.summary ? h("section", { "aria-labelledby": "summary-title" }, h("h2", { id: "summary-title" }, "Summary"), spec.summary(item, lookups)) : null,
        h("section", { "aria-labelledby": "edit-title" }, h("h2", { id: "edit-title" }, `Change this ${spec.singular}`), form),
        extra,
      );
    };
    await render(item);
    view.ready();

    function removeDialog() {
      confirmDialog({
        title: `${spec.deleteLabel || "Delete"} ${name(item)}?`,
        message: spec.deleteMessage ? spec.deleteMessage(item) : `The ${spec.singular} is deleted at once.`,
        confirmText: `${spec.deleteLabel || "Delete"} ${spec.singular}`,
        expected: spec.typedDelete ? name(item) : undefined,
        danger: true,
        onConfirm: async () => {
          await api("DELETE", `${spec.path}/${seg(item.id)}`);
          toast(`${humanize(spec.singular)} ${name(item)} ${spec.deletedText || "deleted"}.`);
          view.navigate(spec.route);
        },
      });
    }
  }

  function breadcrumb(last) {
    return h("p", { class: "breadcrumb" }, h("a", { href: `#/${spec.route}` }, spec.title), " / ", last);
  }

  const escaped = spec.route.replace(/[/-]/g, (c) => `\\${c}`);
  return [
    { pattern: new RegExp(`^${escaped}$`), permission: spec.permission, page: listPage, nav: spec.route },
    { pattern: new RegExp(`^${escaped}\\/new$`), permission: spec.permission, page: newPage, nav: spec.route },
    { pattern: new RegExp(`^${escaped}\\/([^/]+)$`), permission: spec.permission, page: itemPage, nav: spec.route },
  ];
}
