/**
 * `commy principal create|list|delete|set-password` and `commy whoami`:
 * the identities of a tenant (tenant admin or server admin).
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import type { PrincipalInfo } from "../../client/index.js";
import { addClientOptions, runWithClient } from "../connection.js";
import { UsageError } from "../exit-codes.js";
import { addExamples } from "../examples.js";
import { type Column, showTime } from "../output.js";
import { parsePrincipalPath } from "../resource-path.js";

const COLUMNS: readonly Column<PrincipalInfo>[] = [
  { header: "PRINCIPAL", value: (p) => p.principalId },
  { header: "PASSWORD", value: (p) => (p.hasPassword ? "yes" : "no") },
  { header: "CREATED BY", value: (p) => p.createdBy },
  { header: "CREATED AT", value: (p) => showTime(p.createdAt) },
];

/** The password on standard input, without its final line break; kept off the command line. */
function passwordFromStdin(): string {
  let text: string;
  try {
    text = readFileSync(0, "utf8");
  } catch (error) {
    throw new UsageError(
      `cannot read the password from standard input: ${(error as Error).message}`,
    );
  }
  const password = text.replace(/\r?\n$/, "");
  if (password === "") throw new UsageError("--password-stdin: standard input was empty");
  return password;
}

export function registerPrincipalCommands(program: Command): void {
  const principal = program
    .command("principal")
    .description("create, list and delete the principals (identities) of a tenant");
  addExamples(principal, "commy principal create acme/deployer", "commy principal list acme");

  const create = principal
    .command("create")
    .description("create a principal; then give it grants and an API key or a password")
    .argument("<tenant/name>", "the tenant and the principal's name")
    .option("--password-stdin", "set a password (≥ 8 characters) read from standard input");
  addClientOptions(create).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const options = command.opts<{ passwordStdin?: boolean }>();
      const password = options.passwordStdin === true ? passwordFromStdin() : undefined;
      const created = await client.createPrincipal(parsePrincipalPath(path), { password });
      output.result(`created principal ${created.principalId}`, created);
    }),
  );
  addExamples(
    create,
    "commy principal create acme/deployer",
    "printf '%s' \"$PASSWORD\" | commy principal create acme/alice --password-stdin",
  );

  const list = principal
    .command("list")
    .description("list a tenant's principals")
    .argument("<tenant>", "tenant id");
  addClientOptions(list).action((tenantId: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      output.table(await client.listPrincipals(tenantId), COLUMNS);
    }),
  );
  addExamples(list, "commy principal list acme");

  const remove = principal
    .command("delete")
    .alias("revoke")
    .description("delete a principal: its keys, grants and sessions stop working at once")
    .argument("<tenant/name>", "the principal");
  addClientOptions(remove).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const ref = parsePrincipalPath(path);
      await client.deletePrincipal(ref);
      output.result(`deleted principal ${path}`, { ...ref, deleted: true });
    }),
  );
  addExamples(remove, "commy principal delete acme/deployer");

  const password = principal
    .command("set-password")
    .description(
      "set or replace a principal's password, read from standard input; its sessions end",
    )
    .argument("<tenant/name>", "the principal");
  addClientOptions(password).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const ref = parsePrincipalPath(path);
      await client.setPassword(ref, passwordFromStdin());
      output.result(`set the password of ${path}`, { ...ref, passwordSet: true });
    }),
  );
  addExamples(password, "printf '%s' \"$PASSWORD\" | commy principal set-password acme/alice");

  const whoami = program
    .command("whoami")
    .description("show who the token authenticates and what it may do");
  addClientOptions(whoami).action((_: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const caller = await client.whoAmI();
      const grants = caller.grants.map(
        (g) =>
          `${g.tenantId}:${g.permission}${g.servicePrefix === "" ? "" : ` (${g.servicePrefix}*)`}`,
      );
      output.record(caller, [
        ["principal", caller.principal?.principalId ?? "-"],
        ["server admin", caller.serverAdmin ? "yes" : "no"],
        ["grants", grants.length === 0 ? "-" : grants.join(", ")],
      ]);
    }),
  );
  addExamples(whoami, "COMMY_TOKEN=ck_… commy whoami");
}
