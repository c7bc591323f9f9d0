/** `commy tenant create|get|list|delete`: tenants (creating and deleting them is for the server admin). */
import type { Command } from "commander";
import type { TenantInfo } from "../../client/index.js";
import { addClientOptions, runWithClient } from "../connection.js";
import { addExamples } from "../examples.js";
import { type Column, type Output, showTime } from "../output.js";

const COLUMNS: readonly Column<TenantInfo>[] = [
  { header: "TENANT", value: (t) => t.tenantId },
  { header: "NAME", value: (t) => t.tenantName },
  { header: "CREATED BY", value: (t) => t.createdBy },
  { header: "CREATED AT", value: (t) => showTime(t.createdAt) },
];

function printTenant(output: Output, tenant: TenantInfo): void {
  output.record(tenant, [
    ["tenant", tenant.tenantId],
    ["name", tenant.tenantName],
    ["created by", tenant.createdBy],
    ["created at", showTime(tenant.createdAt)],
  ]);
}

export function registerTenantCommands(program: Command): void {
  const tenant = program.command("tenant").description("create, show, list and delete tenants");
  addExamples(tenant, "commy tenant create acme --name 'Acme Corp.'", "commy tenant list");

  const create = tenant
    .command("create")
    .description("create a tenant (server admin)")
    .argument("<tenant>", "tenant id: 1–128 of [A-Za-z0-9._-], not starting with '.'")
    .option("--name <name>", "display name", "");
  addClientOptions(create).action((tenantId: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const created = await client.createTenant(tenantId, command.opts<{ name: string }>().name);
      output.result(`created tenant ${created.tenantId}`, created);
    }),
  );
  addExamples(create, "commy tenant create acme --name 'Acme Corp.'");

  const get = tenant.command("get").description("show a tenant").argument("<tenant>", "tenant id");
  addClientOptions(get).action((tenantId: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      printTenant(output, await client.getTenant(tenantId));
    }),
  );
  addExamples(get, "commy tenant get acme --json");

  const list = tenant.command("list").description("list the tenants the caller may see");
  addClientOptions(list).action((_: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const tenants: TenantInfo[] = [];
      let pageToken: string | undefined;
      do {
        const page = await client.listTenants({ pageToken });
        tenants.push(...page.items);
        pageToken = page.nextPageToken;
        if (pageToken !== undefined) output.progress(`${tenants.length} tenants so far …`);
      } while (pageToken !== undefined);
      output.table(tenants, COLUMNS);
    }),
  );
  addExamples(list, "commy tenant list", "commy tenant list --json | jq -r '.[].tenantId'");

  const remove = tenant
    .command("delete")
    .description("delete a tenant with all its services and variables (server admin)")
    .argument("<tenant>", "tenant id");
  addClientOptions(remove).action((tenantId: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      output.progress(`deleting tenant ${tenantId} and its services …`);
      await client.deleteTenant(tenantId);
      output.result(`deleted tenant ${tenantId}`, { tenantId, deleted: true });
    }),
  );
  addExamples(remove, "commy tenant delete acme");
}
