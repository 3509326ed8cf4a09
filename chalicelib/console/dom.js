// Element building for the console. Every value goes into the page as text (a text node or an
// attribute), never as HTML: the page's Content-Security-Policy enforces Trusted Types, so an HTML
// sink such as innerHTML would throw even if a future change tried one.

const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "selected", "required", "readOnly", "open"]);

/** Create an element: h("a", {href: "#/x", class: "link"}, "text", child, [more children]). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") {
      el.className = value;
    } else if (name === "text") {
      el.textContent = String(value);
    } else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (PROPERTIES.has(name)) {
      el[name] = value;
    } else if (name === "href" && !/^(#|blob:)/.test(String(value))) {
      // Links are hash routes built by the console, or downloads it made itself.
      throw new Error(`refusing link target ${String(value).slice(0, 40)}`);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings as text, nested arrays; null and false are skipped). */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace an element's content. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let counter = 0;

/** A unique element id with a readable prefix. */
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}
