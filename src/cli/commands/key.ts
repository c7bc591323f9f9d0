/** `commy key create|list|revoke`: the API keys of a tenant's principals. */
import type { Command } from "commander";
import type { ApiKeyInfo } from "../../client/index.js";
import { addClientOptions, runWithClient } from "../connection.js";
import { addExamples } from "../examples.js";
import { type Column, showTime } from "../output.js";
import { parsePrincipalPath } from "../resource-path.js";

const COLUMNS: readonly Column<ApiKeyInfo>[] = [
  { header: "KEY", value: (k) => k.keyId },
  { header: "PRINCIPAL", value: (k) => k.principalName },
  { header: "DESCRIPTION", value: (k) => k.description },
  { header: "CREATED AT", value: (k) => showTime(k.createdAt) },
  { header: "REVOKED AT", value: (k) => showTime(k.revokedAt) },
];

export function registerKeyCommands(program: Command): void {
  const key = program.command("key").description("create, list and revoke API keys");
  addExamples(key, "commy key create acme/deployer --description ci", "commy key list acme");

  const create = key
    .command("create")
    .description("create an API key for a principal; its secret is printed only this once")
    .argument("<tenant/principal>", "the principal the key authenticates as")
    .option("--description <text>", "free text to tell keys apart", "");
  addClientOptions(create).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const { description } = command.opts<{ description: string }>();
      const created = await client.createApiKey(parsePrincipalPath(path), { description });
      if (!output.json) {
        output.note(`created key ${created.key.keyId} for ${path}; the secret is shown only now:`);
      }
      output.result(created.secret, { ...created.key, secret: created.secret });
    }),
  );
  addExamples(create, "COMMY_TOKEN=$(commy key create acme/deployer --description ci)");

  const list = key
    .command("list")
    .description("list a tenant's API keys (never their secrets)")
    .argument("<tenant>", "tenant id");
  addClientOptions(list).action((tenantId: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      output.table(await client.listApiKeys(tenantId), COLUMNS);
    }),
  );
  addExamples(list, "commy key list acme --json");

  const revoke = key
    .command("revoke")
    .description("revoke an API key at once")
    .argument("<tenant>", "tenant id")
    .argument("<key-id>", "the key's id, as `commy key list` shows it");
  addClientOptions(revoke).action((tenantId: string, keyId: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      await client.revokeApiKey(tenantId, keyId);
      output.result(`revoked key ${keyId}`, { tenantId, keyId, revoked: true });
    }),
  );
  addExamples(revoke, "commy key revoke acme ck_3f9a…");
}
