// Administration > Keypair profiles: presets for Create keypair. A fixed profile's values win; a
// customizable one only fills the form in. A field left "Not set" is chosen in each request.

import { ALGORITHMS, EC_CURVES, ED_CURVES, RSA_SIZES } from "./create-keypair.js";
import { humanize, label } from "./format.js";
import { Names, createdColumn, lists, resourcePages } from "./resource.js";
import { checkboxList, radioGroup, selectField, textField } from "./ui.js";

const NOT_SET = ["", "Not set (chosen when creating)"];
const CHOICES = {
  type: [["static", "Static"], ["dynamic", "Dynamic"]],
  algorithm: ALGORITHMS,
  key_size: RSA_SIZES,
  curve: [...EC_CURVES, ...ED_CURVES],
  category: [["production", "Production"], ["test", "Test"]],
  storage: [["hsm", "HSM"], ["disk", "Disk"]],
  status: [["online", "Online"], ["offline", "Offline"]],
};
const LABELS = { type: "Keypair type", algorithm: "Algorithm", key_size: "Key size", curve: "Key curve", category: "Keypair category", storage: "Keypair storage", status: "Keypair status" };

/** "Dynamic · ECDSA P-384 · HSM": what a profile sets. */
function settings(profile) {
  const parts = [label(profile.type), [profile.algorithm, profile.key_size || profile.curve].filter(Boolean).join(" "), label(profile.category), label(profile.storage), label(profile.status)];
  return parts.filter((p) => p && p !== "—").join(" · ") || "Nothing set";
}

export const profileRoutes = resourcePages({
  title: "Keypair profiles",
  singular: "profile",
  subtitle: "Presets for Create keypair. Allocated to teams, a profile is offered to their members.",
  path: "keypair-profiles",
  route: "admin/profiles",
  permission: "manage_profiles",
  afterCreate: "list",
  lookups: async (ctx) => {
    const { teams } = ctx.account.teams_enabled ? await lists("teams") : { teams: { items: [] } };
    return { teams: teams.items, teamNames: new Names(teams.items), teamsOn: Boolean(ctx.account.teams_enabled) };
  },
  columns: ({ teamNames, teamsOn }) => [
    { label: "Mode", cell: (p) => humanize(p.mode) },
    { label: "Sets", cell: settings },
    teamsOn ? { label: "Teams", cell: (p) => teamNames.list(p.team_ids) } : null,
    createdColumn,
  ].filter(Boolean),
  form: ({ teams, teamsOn }, profile) => {
    const fields = {
      name: textField({ name: "name", label: "Profile name", value: profile?.name || "", autocomplete: "off", maxlength: "100" }),
      mode: radioGroup({
        name: "mode",
        legend: "Mode",
        value: profile?.mode || "fixed",
        options: [
          ["fixed", "Fixed", "Its values are locked in the form; a request may not contradict them."],
          ["customizable", "Customizable", "Its values are defaults the user may change."],
        ],
      }),
    };
    for (const [name, choices] of Object.entries(CHOICES)) {
      const value = profile && profile[name] !== null && profile[name] !== undefined ? String(profile[name]) : "";
      fields[name] = selectField({ name, label: LABELS[name], value, options: [NOT_SET, ...choices] });
    }
    // As in Create keypair: the size is RSA's, the curve ECDSA's or EdDSA's (always Ed25519).
    const applyAlgorithm = () => {
      const algorithm = fields.algorithm.value();
      fields.key_size.show(algorithm === "RSA" || algorithm === "");
      fields.curve.show(algorithm !== "RSA");
      if (algorithm !== "RSA" && algorithm !== "") fields.key_size.set("");
      if (algorithm === "RSA") fields.curve.set("");
      const curves = algorithm === "EdDSA" ? ED_CURVES : algorithm === "ECDSA" ? EC_CURVES : CHOICES.curve;
      fields.curve.setOptions(algorithm === "EdDSA" ? curves : [NOT_SET, ...curves], fields.curve.value());
    };
    fields.algorithm.control.addEventListener("change", applyAlgorithm);
    applyAlgorithm();
    fields.team_ids = checkboxList({ name: "team_ids", legend: "Teams", items: teams.map((t) => [t.id, t.name || t.id]), empty: "No teams yet." });
    fields.team_ids.set(profile?.team_ids || []);
    fields.team_ids.show(teamsOn);
    const body = () => {
      const request = { name: fields.name.value(), mode: fields.mode.value() };
      for (const name of Object.keys(CHOICES)) {
        const value = fields[name].value();
        request[name] = value === "" ? null : name === "key_size" ? Number(value) : value;
      }
      if (teamsOn) request.team_ids = fields.team_ids.value();
      return request;
    };
    return { fields, body };
  },
});
