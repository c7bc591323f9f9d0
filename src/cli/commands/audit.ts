/** `commy audit`: the audit log, filtered (tenant admins: their tenant; the server admin: all). */
import type { Command } from "commander";
import type { AuditEventInfo, AuditFilter } from "../../client/index.js";
import { addClientOptions, runWithClient } from "../connection.js";
import { UsageError } from "../exit-codes.js";
import { addExamples } from "../examples.js";
import { type Column, showTime } from "../output.js";

const COLUMNS: readonly Column<AuditEventInfo>[] = [
  { header: "ID", value: (e) => e.eventId },
  { header: "TIME", value: (e) => showTime(e.time) },
  { header: "PRINCIPAL", value: (e) => e.principalId || "-" },
  { header: "ACTION", value: (e) => e.action },
  { header: "RESOURCE", value: (e) => e.resource },
  { header: "OUTCOME", value: (e) => e.outcome },
  { header: "DETAIL", value: (e) => e.detail },
];

/** The server's largest page. */
const PAGE_SIZE = 1000;

interface AuditFlags {
  tenant?: string;
  principal?: string;
  action?: string;
  since?: string;
  until?: string;
  after?: string;
  limit: string;
}

function parseTime(text: string | undefined, option: string): Date | undefined {
  if (text === undefined) return undefined;
  const time = new Date(text);
  if (Number.isNaN(time.getTime())) {
    throw new UsageError(
      `${option} must be a date or time, e.g. 2025-01-31T12:00:00Z (got ${text})`,
    );
  }
  return time;
}

function parseLimit(text: string): number {
  const limit = Number(text);
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new UsageError(`--limit must be a whole number ≥ 1 (got ${text})`);
  }
  return limit;
}

export function registerAuditCommand(program: Command): void {
  const audit = program
    .command("audit")
    .description("list audit events, oldest first: every create/delete, grant change and denial")
    .option("--tenant <tenant>", "only this tenant's events (required for a tenant admin)")
    .option("--principal <id>", "only this principal's events, e.g. acme/deployer")
    .option("--action <action>", "only this action, e.g. service.create, grant.add, auth.login")
    .option("--since <time>", "only events at or after this time (ISO 8601)")
    .option("--until <time>", "only events before this time (ISO 8601)")
    .option("--after <event-id>", "only events after this event id")
    .option("--limit <n>", "at most this many events", "1000");
  addClientOptions(audit).action((_: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const flags = command.opts<AuditFlags>();
      const limit = parseLimit(flags.limit);
      const filter: AuditFilter = {
        tenantId: flags.tenant,
        principalId: flags.principal,
        action: flags.action,
        since: parseTime(flags.since, "--since"),
        until: parseTime(flags.until, "--until"),
      };
      const events: AuditEventInfo[] = [];
      let pageToken = flags.after;
      do {
        const pageSize = Math.min(PAGE_SIZE, limit - events.length);
        const page = await client.listAuditEvents({ ...filter, pageSize, pageToken });
        events.push(...page.items);
        pageToken = page.nextPageToken;
        if (pageToken !== undefined && events.length < limit) {
          output.progress(`${events.length} events so far …`);
        }
      } while (pageToken !== undefined && events.length < limit);
      output.table(events.slice(0, limit), COLUMNS);
    }),
  );
  addExamples(
    audit,
    "commy audit --tenant acme --action grant.add --since 2025-01-01",
    "commy audit --tenant acme --principal acme/deployer --json",
  );
}
