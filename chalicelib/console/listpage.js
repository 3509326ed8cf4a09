// A page of a filtered, paginated list (keypairs, audit log, signature log): the filters live in the
// route (#/path?name=value, so Back and a bookmark keep them), the `next` tokens in memory.

import { api } from "./api.js";
import { Pager, alertBox, filterBar, h, loading, pageHeader, replace } from "./ui.js";

/**
 * Render the page into view.root and load its first page.
 * spec: {title, subtitle, actions, route, path, names, fields, table(items), toQuery(values), pageSize}
 */
export async function listPage(view, spec) {
  const { title, subtitle, actions = [], route, path, names, fields, table, toQuery = (v) => v, pageSize = 50 } = spec;
  const values = Object.fromEntries(names.map((n) => [n, view.params.get(n) || ""]));
  const results = h("div", { class: "results", "aria-live": "polite" });
  const pager = new Pager(load);
  replace(
    view.root,
    pageHeader(title, { subtitle, actions }),
    filterBar({
      label: `Filter ${title.toLowerCase()}`,
      fields,
      onApply: (v) => view.navigate(route, toQuery(v)),
      onClear: () => view.navigate(route),
    }),
    results,
  );
  view.ready();

  async function load() {
    results.setAttribute("aria-busy", "true");
    replace(results, loading(`Loading ${title.toLowerCase()}`));
    try {
      const data = await api("GET", path, { query: { ...values, limit: pageSize, next: pager.token } });
      pager.nextToken = data.next;
      replace(results, table(data.items || []), pager.element(title));
    } catch (error) {
      replace(results, alertBox(error.message));
    } finally {
      results.removeAttribute("aria-busy");
    }
  }
  await load();
}
