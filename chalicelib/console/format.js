// How values read on screen: times in the user's own time zone, durations, algorithm labels.

const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** The browser's time zone name (e.g. Europe/Paris), shown beside time columns. */
export function timeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
}

/** An RFC 3339 time in the user's time zone, or an em dash. */
export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : DATE_TIME.format(date);
}

/** A <time> element: local time as text, the UTC value in datetime and in its tooltip. */
export function timeElement(h, iso) {
  if (!iso) return "—";
  return h("time", { datetime: String(iso), title: `${iso} (UTC)` }, formatTime(iso));
}

/** Milliseconds as 4:05 or 1:02:03 (never negative). */
export function formatDuration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** "RSA 3072", "ECDSA P-256", "EdDSA Ed25519". */
export function algorithmLabel(keypair) {
  const size = keypair.algorithm === "RSA" ? keypair.key_size : keypair.curve || (keypair.algorithm === "EdDSA" ? "Ed25519" : "");
  return [keypair.algorithm, size].filter(Boolean).join(" ");
}

const LABELS = {
  static: "Static",
  dynamic: "Dynamic",
  online: "Online",
  offline: "Offline",
  open: "Open",
  restricted: "Restricted",
  production: "Production",
  test: "Test",
  hsm: "HSM",
  disk: "Disk",
  success: "Success",
  failed: "Failed",
  failure: "Failure",
};

/** The display label of an API enumeration value (the value itself when unknown). */
export function label(value) {
  if (value === null || value === undefined || value === "") return "—";
  return LABELS[value] || String(value);
}

/** "release_window" → "Release window", "sign_denied" → "Sign denied". */
export function humanize(value) {
  if (!value) return "—";
  const text = String(value).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A local `datetime-local` input value as RFC 3339 UTC, or "" when empty or invalid. */
export function localInputToRfc3339(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** An RFC 3339 time as a `datetime-local` input value in the user's time zone. */
export function rfc3339ToLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
