/**
 * The server's logger: pino JSON lines, with every field that can hold a
 * secret censored wherever it appears in a log object (the brief: no
 * token, key or password is ever logged). Tests build it on a memory
 * stream to check exactly that.
 */
import { type DestinationStream, type Logger, pino } from "pino";

/** Field names whose values are secrets, at the top level or one level down. */
const SECRET_FIELDS = [
  "authorization",
  "password",
  "token",
  "key",
  "apiKey",
  "api_key",
  "secret",
  "credential",
  "adminToken",
];

export const REDACTED = "[redacted]";

export function createServerLogger(level: string, destination?: DestinationStream): Logger {
  const paths = SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.headers.${field}`]);
  const options = { level, redact: { paths, censor: REDACTED } };
  return destination === undefined ? pino(options) : pino(options, destination);
}
