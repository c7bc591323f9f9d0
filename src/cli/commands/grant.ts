/** `commy grant`, `commy revoke` and `commy grants`: what the principals of a tenant may do. */
import type { Command } from "commander";
import type { PrincipalGrant } from "../../client/index.js";
import { GRANT_PERMISSIONS, type GrantPermission } from "../../core/caller.js";
import { addClientOptions, runWithClient } from "../connection.js";
import { UsageError } from "../exit-codes.js";
import { addExamples } from "../examples.js";
import type { Column } from "../output.js";
import { parsePrincipalPath } from "../resource-path.js";

const COLUMNS: readonly Column<PrincipalGrant>[] = [
  { header: "PRINCIPAL", value: (g) => g.principalName },
  { header: "PERMISSION", value: (g) => g.permission },
  { header: "SERVICE PREFIX", value: (g) => g.servicePrefix },
];

function parsePermission(text: string): GrantPermission {
  const found = GRANT_PERMISSIONS.find((permission) => permission === text);
  if (found === undefined) {
    throw new UsageError(`unknown permission ${text}; one of ${GRANT_PERMISSIONS.join(", ")}`);
  }
  return found;
}

/** `grant` and `revoke` take the same arguments. */
function grantCommand(program: Command, name: string, description: string): Command {
  const command = program
    .command(name)
    .description(description)
    .argument("<tenant/principal>", "the principal")
    .argument("<permission>", GRANT_PERMISSIONS.join(" | "))
    .option("--prefix <prefix>", "only services whose names start with this prefix", "");
  return addClientOptions(command);
}

export function registerGrantCommands(program: Command): void {
  const grant = grantCommand(program, "grant", "grant a permission to a principal (idempotent)");
  grant.action((path: string, permission: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const principal = parsePrincipalPath(path);
      const given = {
        tenantId: principal.tenantId,
        permission: parsePermission(permission),
        servicePrefix: command.opts<{ prefix: string }>().prefix,
      };
      await client.grantPermission(principal.name, given);
      output.result(`granted ${permission}${prefixText(given.servicePrefix)} to ${path}`, {
        principalName: principal.name,
        ...given,
      });
    }),
  );
  addExamples(
    grant,
    "commy grant acme/deployer variable:write --prefix config-",
    "commy grant acme/ops tenant:admin",
  );

  const revoke = grantCommand(
    program,
    "revoke",
    "revoke a permission granted with the same prefix (not granted: NOT_FOUND)",
  );
  revoke.action((path: string, permission: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const principal = parsePrincipalPath(path);
      const taken = {
        tenantId: principal.tenantId,
        permission: parsePermission(permission),
        servicePrefix: command.opts<{ prefix: string }>().prefix,
      };
      await client.revokePermission(principal.name, taken);
      output.result(`revoked ${permission}${prefixText(taken.servicePrefix)} from ${path}`, {
        principalName: principal.name,
        ...taken,
      });
    }),
  );
  addExamples(revoke, "commy revoke acme/deployer variable:write --prefix config-");

  const list = program
    .command("grants")
    .description("list the grants of a tenant's principals")
    .argument("<tenant>", "tenant id")
    .option("--principal <name>", "only this principal's grants");
  addClientOptions(list).action((tenantId: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const { principal } = command.opts<{ principal?: string }>();
      output.table(await client.listGrants(tenantId, { principalName: principal }), COLUMNS);
    }),
  );
  addExamples(list, "commy grants acme --principal deployer");
}

const prefixText = (prefix: string): string => (prefix === "" ? "" : ` on ${prefix}*`);
