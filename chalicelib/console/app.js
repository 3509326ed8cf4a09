// The console shell: sign-in, the caller's identity and permissions, the navigation and the router.
// Pages live in hash routes (#/keypairs, #/logs/audit?type=dynamic…): the server serves one page, and
// a route carries only ids and filter values — never a secret.

import { groupRoutes, teamRoutes } from "./access.js";
import { accountPage } from "./account.js";
import { ApiError, api, onUnauthenticated, session } from "./api.js";
import { h, replace } from "./dom.js";
import { createPage } from "./create-keypair.js";
import { detailPage } from "./keypair.js";
import { keypairsPage } from "./keypairs.js";
import * as logs from "./logs.js";
import { profileRoutes } from "./profiles.js";
import { windowRoutes } from "./release-windows.js";
import { userRoutes } from "./users.js";
import { alertBox, loading, textField } from "./ui.js";

// The navigation, by section: an entry shows only to a caller with its permission.
const NAV = [
  {
    section: "Signing keys",
    items: [{ route: "keypairs", label: "Keypairs", permission: "view_keypair" }],
  },
  {
    section: "Logs",
    items: [
      { route: "logs/audit", label: "Audit logs", permission: "view_audit_log" },
      { route: "logs/signatures", label: "Signature logs", permission: "view_audit_log" },
    ],
  },
  {
    section: "Administration",
    items: [
      { route: "admin/users", label: "Users", permission: "manage_users" },
      { route: "admin/groups", label: "Groups", permission: "manage_users" },
      { route: "admin/teams", label: "Teams", permission: "manage_teams" },
      { route: "admin/profiles", label: "Keypair profiles", permission: "manage_profiles" },
      { route: "admin/release-windows", label: "Release windows", permission: "manage_releases" },
      { route: "admin/account", label: "Account settings", permission: "manage_account" },
    ],
  },
];

const ROUTES = [
  { pattern: /^keypairs$/, permission: "view_keypair", page: keypairsPage, nav: "keypairs" },
  { pattern: /^keypairs\/new$/, permission: "generate_keypair", page: createPage, nav: "keypairs" },
  { pattern: /^keypairs\/([^/]+)$/, permission: "view_keypair", page: detailPage, nav: "keypairs" },
  { pattern: /^logs\/audit$/, permission: "view_audit_log", page: logs.auditPage, nav: "logs/audit" },
  { pattern: /^logs\/signatures$/, permission: "view_audit_log", page: logs.signaturesPage, nav: "logs/signatures" },
  { pattern: /^logs\/signatures\/([^/]+)$/, permission: "view_audit_log", page: logs.signatureEntryPage, nav: "logs/signatures" },
  ...userRoutes,
  ...groupRoutes,
  ...teamRoutes,
  ...profileRoutes,
  ...windowRoutes,
  { pattern: /^admin\/account$/, permission: "manage_account", page: accountPage, nav: "admin/account" },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let ctx = null;
let cleanups = [];

/** What the signed-in caller is and may do. */
class Context {
  constructor(me) {
    this.me = me;
    this.permissions = new Set(Array.isArray(me.permissions) ? me.permissions : []);
    this.account = me.account || {};
  }

  can(permission) {
    return this.permissions.has(permission);
  }
}

/** #/path?query → {path, params}. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  return { path: path.replace(/\/+$/, ""), params: new URLSearchParams(query) };
}

/** Go to a route: navigate("keypairs", {type: "dynamic"}). */
export function navigate(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();
  const target = `#/${path}${query ? `?${query}` : ""}`;
  if (location.hash === target) route();
  else location.hash = target;
}

function visibleNav() {
  return NAV.map((s) => ({ ...s, items: s.items.filter((i) => ctx.can(i.permission)) })).filter((s) => s.items.length);
}

function renderNav(current) {
  replace(
    nav,
    visibleNav().map((s) =>
      h(
        "div",
        { class: "nav-section" },
        h("h2", { class: "nav-heading" }, s.section),
        h(
          "ul",
          {},
          s.items.map((i) => h("li", {}, h("a", { href: `#/${i.route}`, "aria-current": i.route === current ? "page" : null }, i.label))),
        ),
      ),
    ),
  );
  nav.hidden = false;
}

function runCleanups() {
  for (const fn of cleanups) fn();
  cleanups = [];
}

function route() {
  if (!ctx) return;
  runCleanups();
  const { path, params } = parseHash();
  const match = ROUTES.map((r) => [r, path.match(r.pattern)]).find(([, m]) => m);
  const root = h("div", { class: "page" });
  replace(main, root);
  if (!match) {
    const home = visibleNav()[0]?.items[0]?.route;
    if (home) {
      history.replaceState(null, "", `#/${home}`);
      route();
    } else {
      renderNav(null);
      replace(root, h("h1", { tabindex: "-1" }, "Nothing to show"), h("p", {}, "Your role has no pages in this console."));
      focusTitle();
    }
    return;
  }
  const [r, m] = match;
  renderNav(r.nav);
  if (!ctx.can(r.permission)) {
    replace(root, h("h1", { tabindex: "-1" }, "Not allowed"), alertBox("Your role does not allow this page."));
    focusTitle();
    return;
  }
  const view = {
    ctx,
    root,
    params,
    args: m.slice(1).map((a) => decodeURIComponent(a)),
    navigate,
    onLeave: (fn) => cleanups.push(fn),
    ready: () => {
      document.title = `${root.querySelector("h1")?.textContent || "Console"} — rotasign`;
      focusTitle();
    },
  };
  Promise.resolve(r.page(view)).catch((error) => {
    replace(root, h("h1", { tabindex: "-1" }, "Something went wrong"), alertBox(error.message || String(error)));
    focusTitle();
  });
}

function focusTitle() {
  const title = main.querySelector("h1");
  if (title) title.focus({ preventScroll: false });
}

function showSession() {
  const who = document.getElementById("who");
  const name = ctx.me.user?.name || ctx.me.user?.id || "";
  const account = ctx.account.name || "";
  replace(who, h("span", { class: "user" }, name), account ? h("span", { class: "account" }, account) : null);
  document.getElementById("session").hidden = false;
}

function signOut(message) {
  runCleanups();
  session.clear();
  ctx = null;
  document.getElementById("session").hidden = true;
  replace(nav);
  nav.hidden = true;
  renderSignIn(message);
}

function renderSignIn(message) {
  document.title = "Sign in — rotasign";
  const key = textField({
    name: "api-key",
    label: "API key",
    type: "password",
    hint: "Your key starts with rsk_. It is kept in this browser tab only, until you sign out or close the tab.",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  // No name attribute: the key is never part of a form submission, whatever happens to the script.
  key.control.removeAttribute("name");
  const status = h("div", {}, message ? alertBox(message, "info") : null);
  const submit = h("button", { type: "submit", class: "button primary" }, "Sign in");
  const form = h("form", { class: "signin", method: "post", novalidate: true, "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in to rotasign"),
    h("p", { class: "subtitle" }, "Manage signing keypairs and read the audit and signature logs."),
    status, key.wrap, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = key.control.value.trim();
    key.setError("");
    if (!value) {
      key.setError("Enter your API key.");
      key.control.focus();
      return;
    }
    submit.disabled = true;
    try {
      const me = await api("GET", "me", { key: value });
      session.save(value);
      key.control.value = "";
      start(me);
    } catch (error) {
      key.setError(error instanceof ApiError && error.status === 401 ? "This API key was not accepted." : error.message);
      key.control.focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, h("div", { class: "signin-wrap" }, form));
  key.control.focus();
}

function start(me) {
  ctx = new Context(me);
  showSession();
  route();
}

async function boot() {
  document.getElementById("sign-out").addEventListener("click", () => signOut("You are signed out."));
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    (main.querySelector("h1") || main).focus();
  });
  window.addEventListener("hashchange", route);
  onUnauthenticated(() => {
    if (ctx) signOut("Your API key is no longer accepted. Sign in again.");
  });
  if (!session.key) {
    renderSignIn();
    return;
  }
  replace(main, loading("Signing in"));
  try {
    start(await api("GET", "me"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) signOut("Your API key is no longer accepted. Sign in again.");
    else replace(main, h("h1", { tabindex: "-1" }, "The service could not be reached"), alertBox(error.message));
  }
}

boot();
