// Administration > Groups and Teams: who may use restricted keypairs (groups) and whose keypairs a
// user sees (teams, when the account has teams on).

import { Names, createdColumn, lists, resourcePages, userLabel } from "./resource.js";
import { alertBox, checkboxList, fieldList, h, textField } from "./ui.js";

const membersField = (users) =>
  checkboxList({ name: "member_ids", legend: "Members", items: users.map((u) => [u.id, userLabel(u)]), empty: "No users to choose from." });

export const groupRoutes = resourcePages({
  title: "Groups",
  singular: "group",
  subtitle: "User groups name several users at once, for restricted keypairs and teams.",
  path: "groups",
  route: "admin/groups",
  permission: "manage_users",
  deleteMessage: () => "The group is deleted and leaves its teams; its users stay.",
  lookups: async () => {
    const { users } = await lists("users");
    return { users: users.items, userNames: new Names(users.items) };
  },
  columns: ({ userNames }) => [
    { label: "Members", cell: (g) => userNames.list(g.member_ids) },
    createdColumn,
  ],
  form: ({ users }, group) => {
    const fields = {
      name: textField({ name: "name", label: "Group name", value: group?.name || "", autocomplete: "off", maxlength: "100" }),
      member_ids: membersField(users),
    };
    fields.member_ids.set(group?.member_ids || []);
    return { fields, body: () => ({ name: fields.name.value(), member_ids: fields.member_ids.value() }) };
  },
});

/** Teams answer 409 teams_disabled while the account has them off: say so above the pages. */
function teamsNotice(ctx) {
  if (ctx.account.teams_enabled) return null;
  const where = ctx.can("manage_account") ? ["Turn them on in ", h("a", { href: "#/admin/account" }, "Account settings"), "."] : "An admin can turn them on.";
  return alertBox(h("span", {}, "Teams are off for this account. ", where), "info");
}

export const teamRoutes = resourcePages({
  title: "Teams",
  singular: "team",
  subtitle: "A team's members see its keypairs and use its keypair profiles; admins see every team's keypairs.",
  path: "teams",
  route: "admin/teams",
  permission: "manage_teams",
  notice: teamsNotice,
  off: (ctx) => !ctx.account.teams_enabled,
  deleteMessage: () => "The team is deleted; its keypairs stay, visible to admins only.",
  lookups: async () => {
    const { users, groups, "keypair-profiles": profiles } = await lists("users", "groups", "keypair-profiles");
    return {
      users: users.items,
      groups: groups.items,
      userNames: new Names(users.items),
      groupNames: new Names(groups.items),
      profileNames: new Names(profiles.items),
    };
  },
  columns: ({ userNames, groupNames, profileNames }) => [
    { label: "Members", cell: (t) => userNames.list(t.member_ids) },
    { label: "Groups", cell: (t) => groupNames.list(t.group_ids) },
    { label: "Keypair profiles", cell: (t) => profileNames.list(t.profile_ids) },
    createdColumn,
  ],
  summary: (team, { profileNames }) =>
    fieldList([
      ["Team ID", h("span", { class: "mono" }, team.id)],
      ["Keypair profiles", [profileNames.list(team.profile_ids), h("span", { class: "hint" }, " (allocated on each profile's page)")]],
    ]),
  form: ({ users, groups }, team) => {
    const fields = {
      name: textField({ name: "name", label: "Team name", value: team?.name || "", autocomplete: "off", maxlength: "100" }),
      member_ids: membersField(users),
      group_ids: checkboxList({
        name: "group_ids",
        legend: "Member groups",
        items: groups.map((g) => [g.id, g.name || g.id]),
        empty: "No groups to choose from.",
        hint: "Every user of a member group is a member of the team.",
      }),
    };
    fields.member_ids.set(team?.member_ids || []);
    fields.group_ids.set(team?.group_ids || []);
    const body = () => ({ name: fields.name.value(), member_ids: fields.member_ids.value(), group_ids: fields.group_ids.value() });
    return { fields, body };
  },
});
