/** `commy service create|get|list|delete`: the services of a tenant. */
import type { Command } from "commander";
import type { ServiceInfo } from "../../client/index.js";
import { addClientOptions, runWithClient } from "../connection.js";
import { addExamples } from "../examples.js";
import { type Column, showTime } from "../output.js";
import { parseServicePath } from "../resource-path.js";

const COLUMNS: readonly Column<ServiceInfo>[] = [
  { header: "SERVICE", value: (s) => s.serviceName },
  { header: "ID", value: (s) => s.serviceId },
  { header: "CREATED BY", value: (s) => s.createdBy },
  { header: "CREATED AT", value: (s) => showTime(s.createdAt) },
];

export function registerServiceCommands(program: Command): void {
  const service = program
    .command("service")
    .description("create, show, list and delete the services of a tenant");
  addExamples(service, "commy service create acme/config", "commy service list acme");

  const create = service
    .command("create")
    .description("create an empty service")
    .argument("<tenant/service>", "the tenant and the new service's name");
  addClientOptions(create).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const created = await client.createService(parseServicePath(path));
      output.result(`created service ${path} (id ${created.serviceId})`, created);
    }),
  );
  addExamples(create, "commy service create acme/config");

  const get = service
    .command("get")
    .description("show a service")
    .argument("<tenant/service>", "the service");
  addClientOptions(get).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const found = await client.getService(parseServicePath(path));
      output.record(found, [
        ["service", `${found.tenantId}/${found.serviceName}`],
        ["id", found.serviceId],
        ["created by", found.createdBy],
        ["created at", showTime(found.createdAt)],
      ]);
    }),
  );
  addExamples(get, "commy service get acme/config");

  const list = service
    .command("list")
    .description("list a tenant's services")
    .argument("<tenant>", "tenant id");
  addClientOptions(list).action((tenantId: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const services: ServiceInfo[] = [];
      let pageToken: string | undefined;
      do {
        const page = await client.listServices(tenantId, { pageToken });
        services.push(...page.items);
        pageToken = page.nextPageToken;
        if (pageToken !== undefined) output.progress(`${services.length} services so far …`);
      } while (pageToken !== undefined);
      output.table(services, COLUMNS);
    }),
  );
  addExamples(list, "commy service list acme --json");

  const remove = service
    .command("delete")
    .description("delete a service and its variables (local readers see it marked deleted)")
    .argument("<tenant/service>", "the service");
  addClientOptions(remove).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const ref = parseServicePath(path);
      await client.deleteService(ref);
      output.result(`deleted service ${path}`, { ...ref, deleted: true });
    }),
  );
  addExamples(remove, "commy service delete acme/config");
}
