// Create keypair: every field of the create request, adapting to the choices made as the peer's form does.

import { api, optionalList, seg } from "./api.js";
import { userLabel } from "./resource.js";
import { checkboxField, checkboxList, h, loading, pageHeader, radioGroup, replace, selectField, showApiError, textField, toast } from "./ui.js";

// The algorithm choices, also offered by the keypair profiles' form.
export const ALGORITHMS = [["RSA", "RSA"], ["ECDSA", "ECDSA"], ["EdDSA", "EdDSA"]];
export const RSA_SIZES = [["2048", "2048"], ["3072", "3072"], ["4096", "4096"]];
export const EC_CURVES = [["P-256", "P-256"], ["P-384", "P-384"], ["P-521", "P-521"]];
export const ED_CURVES = [["Ed25519", "Ed25519"]];

/** #/keypairs/new: every field of the create request, adapting to the choices made. */
export async function createPage(view) {
  const { ctx, root } = view;
  replace(root, pageHeader("Create keypair"), loading("Loading the form"));
  const teamsOn = Boolean(ctx.account.teams_enabled);
  const [teams, profiles, users, groups] = await Promise.all([
    teamsOn ? optionalList("teams") : Promise.resolve({ available: false, items: [] }),
    optionalList("keypair-profiles"),
    optionalList("users"),
    optionalList("groups"),
  ]);
  const requireProfile = Boolean(ctx.account.require_keypair_profile);

  const f = {
    type: radioGroup({
      name: "type",
      legend: "Keypair type",
      value: "static",
      options: [
        ["static", "Static", "The key stays the same until you delete the keypair."],
        ["dynamic", "Dynamic", "A new key and certificate replace the old ones on every scheduled refresh."],
      ],
    }),
    alias: textField({
      name: "alias",
      label: "Keypair alias",
      hint: "A unique name: letters, digits, dots, dashes and underscores, up to 64 characters.",
      autocomplete: "off",
      spellcheck: "false",
      maxlength: "64",
    }),
    team: selectField({
      name: "team_id",
      label: "Team",
      hint: "The team that has access to this keypair.",
      options: [["", "No team"], ...teams.items.map((t) => [t.id, t.name || t.id])],
    }),
    profile: selectField({ name: "profile_id", label: "Keypair profile", options: [] }),
    algorithm: selectField({ name: "algorithm", label: "Algorithm", value: "RSA", options: ALGORITHMS }),
    keySize: selectField({ name: "key_size", label: "Key size", value: "3072", options: RSA_SIZES }),
    curve: selectField({ name: "curve", label: "Key curve", value: "P-256", options: EC_CURVES }),
    category: radioGroup({
      name: "category",
      legend: "Keypair category",
      value: "production",
      options: [["production", "Production"], ["test", "Test", "Certified by the account's test CA: never verifies as production."]],
    }),
    storage: radioGroup({
      name: "storage",
      legend: "Keypair storage",
      value: "hsm",
      options: [["hsm", "HSM", "Generated and kept on the hardware security module."], ["disk", "Disk", "Encrypted under the service's KMS key."]],
    }),
    status: radioGroup({
      name: "status",
      legend: "Keypair status",
      value: "online",
      options: [["online", "Online", "Can sign at any time."], ["offline", "Offline", "Can sign only during a scheduled release window."]],
    }),
    access: radioGroup({
      name: "access",
      legend: "Access",
      value: "open",
      options: [["open", "Open", "Any user of the account with the sign permission."], ["restricted", "Restricted", "Only the users and groups chosen below."]],
    }),
    users: users.available ? checkboxList({
      name: "allowed_users",
      legend: "Allowed users",
      items: users.items.map((u) => [u.id, userLabel(u)]),
      empty: "No users to choose from.",
    }) : userIdsField(),
    groups: checkboxList({
      name: "allowed_groups",
      legend: "Allowed user groups",
      items: groups.items.map((g) => [g.id, g.name || g.id]),
      empty: "No groups to choose from.",
    }),
    certificate: checkboxField({
      name: "generate_certificate",
      label: "Generate certificate",
      checked: true,
      hint: "Issue a default code-signing certificate for the key.",
    }),
    singleUse: checkboxField({
      name: "refresh_after_sign",
      label: "New key after every signature",
      hint: "Single-use keys: each key makes at most one signature. The scheduled refresh still applies.",
    }),
  };
  const profileNote = h("p", { class: "hint locked-note", hidden: true });
  f.profile.wrap.append(profileNote);
  const byName = {
    type: f.type, alias: f.alias, team_id: f.team, profile_id: f.profile, algorithm: f.algorithm, key_size: f.keySize,
    curve: f.curve, category: f.category, storage: f.storage, status: f.status, access: f.access,
    allowed_users: f.users, allowed_groups: f.groups, generate_certificate: f.certificate, refresh_after_sign: f.singleUse,
  };
  const formError = h("div");
  const submit = h("button", { type: "submit", class: "button primary" }, "Create keypair");
  const form = h(
    "form",
    { class: "form", method: "post", novalidate: true, "aria-label": "Create keypair" },
    formError,
    Object.values(f).map((field) => field.wrap),
    h("div", { class: "actions" }, submit, h("a", { href: "#/keypairs", class: "button secondary" }, "Cancel")),
  );
  replace(root, pageHeader("Create keypair", { subtitle: "Choose the keypair's parameters. Dynamic keypairs keep them through every refresh." }), form);

  // --- adapting the form -------------------------------------------------------------------
  let locked = new Set();

  function profilesForTeam() {
    const team = f.team.value();
    if (!teamsOn || !team) return profiles.items;
    const chosen = teams.items.find((t) => t.id === team);
    return profiles.items.filter((p) => (p.team_ids || []).includes(team) || (chosen?.profile_ids || []).includes(p.id));
  }

  function refreshProfiles() {
    const current = f.profile.value();
    const list = profilesForTeam();
    const none = requireProfile ? [["", "Choose a profile"]] : [["", "No profile"]];
    f.profile.setOptions([...none, ...list.map((p) => [p.id, `${p.name || p.id}${p.mode === "fixed" ? " (fixed)" : ""}`])], current);
    f.profile.show(profiles.available || requireProfile);
    applyProfile();
  }

  function applyAlgorithm() {
    const algorithm = f.algorithm.value();
    f.keySize.show(algorithm === "RSA");
    f.curve.show(algorithm !== "RSA");
    if (algorithm === "EdDSA") {
      f.curve.setOptions(ED_CURVES, "Ed25519");
      f.curve.lock(true);
      f.curve.wrap.querySelector("label").textContent = "Key curve (EdDSA uses Ed25519)";
    } else if (algorithm === "ECDSA") {
      const current = f.curve.value();
      f.curve.setOptions(EC_CURVES, EC_CURVES.some(([v]) => v === current) ? current : "P-256");
      f.curve.lock(locked.has("curve"));
      f.curve.wrap.querySelector("label").textContent = "Key curve";
    }
  }

  function applyType() {
    f.singleUse.show(f.type.value() === "dynamic");
  }

  function applyAccess() {
    const restricted = f.access.value() === "restricted";
    f.users.show(restricted);
    f.groups.show(restricted);
  }

  // A fixed profile sets and locks its fields; a customizable one only fills them in.
  function applyProfile() {
    const profile = profiles.items.find((p) => p.id === f.profile.value());
    const settings = {
      type: f.type, algorithm: f.algorithm, key_size: f.keySize, curve: f.curve, category: f.category, storage: f.storage, status: f.status,
    };
    locked = new Set();
    for (const [name, field] of Object.entries(settings)) {
      const value = profile ? profile[name] : null;
      if (value !== null && value !== undefined && value !== "") {
        if (name === "algorithm") {
          field.set(value);
          applyAlgorithm();
        } else {
          field.set(String(value));
        }
        if (profile.mode === "fixed") locked.add(name);
      }
      field.lock(locked.has(name));
    }
    applyAlgorithm();
    applyType();
    profileNote.hidden = !locked.size;
    profileNote.textContent = locked.size ? `The fixed profile sets: ${[...locked].join(", ").replace(/_/g, " ")}. These fields are locked.` : "";
  }

  f.team.show(teamsOn);
  f.algorithm.control.addEventListener("change", applyAlgorithm);
  f.type.onChange(applyType);
  f.access.onChange(applyAccess);
  f.team.control.addEventListener("change", refreshProfiles);
  f.profile.control.addEventListener("change", applyProfile);
  refreshProfiles();
  applyAccess();
  view.ready();

  // --- submitting --------------------------------------------------------------------------
  function body() {
    const algorithm = f.algorithm.value();
    const request = {
      alias: f.alias.value(),
      type: f.type.value(),
      algorithm,
      category: f.category.value(),
      storage: f.storage.value(),
      status: f.status.value(),
      access: f.access.value(),
      generate_certificate: f.certificate.value(),
    };
    if (algorithm === "RSA") request.key_size = Number(f.keySize.value());
    else request.curve = f.curve.value();
    if (request.access === "restricted") {
      request.allowed_users = f.users.value();
      request.allowed_groups = f.groups.value();
    }
    if (teamsOn && f.team.value()) request.team_id = f.team.value();
    if (f.profile.value()) request.profile_id = f.profile.value();
    if (request.type === "dynamic") request.refresh_after_sign = f.singleUse.value();
    return request;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const field of Object.values(f)) field.setError("");
    replace(formError);
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const created = await api("POST", "keypairs", { body: body() });
      toast(`Keypair ${created.alias} created.`);
      view.navigate(`keypairs/${seg(created.id)}`);
    } catch (error) {
      showError(error);
    } finally {
      submit.disabled = false;
      submit.textContent = "Create keypair";
    }
  });

  function showError(error) {
    if (error.code !== "alias_taken") {
      showApiError(error, byName, formError);
      return;
    }
    f.alias.setError("This alias is already used by another keypair.");
    f.alias.focusTarget().focus();
  }
}

/** Allowed users for a caller whose role cannot list the account's users: their ids, typed. */
function userIdsField() {
  const field = textField({
    name: "allowed_users",
    label: "Allowed user IDs",
    hint: "Separated by commas or spaces (usr_…). Your role cannot list the account's users.",
    autocomplete: "off",
    spellcheck: "false",
  });
  const text = field.value;
  field.value = () => text().split(/[\s,]+/).filter(Boolean);
  return field;
}
