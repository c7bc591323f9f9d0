/**
 * How the command line names things: a service as "<tenant>/<service>",
 * a variable as "<tenant>/<service>/<variable>", a principal as
 * "<tenant>/<name>" (as the audit log writes them). Names never contain
 * "/", so the split is unambiguous; the server validates the names.
 */
import { UsageError } from "./exit-codes.js";

/** A service path. */
export interface ServicePath {
  tenantId: string;
  serviceName: string;
}

/** A variable path. */
export interface VariablePath extends ServicePath {
  variableName: string;
}

/** A principal path. */
export interface PrincipalPath {
  tenantId: string;
  name: string;
}

function split(text: string, parts: number, shape: string): string[] {
  const pieces = text.split("/");
  if (pieces.length !== parts || pieces.some((piece) => piece === "")) {
    throw new UsageError(`expected ${shape}, got ${JSON.stringify(text)}`);
  }
  return pieces;
}

/** "<tenant>/<service>" as a ServicePath; a UsageError for any other shape. */
export function parseServicePath(text: string): ServicePath {
  const [tenantId = "", serviceName = ""] = split(text, 2, "<tenant>/<service>");
  return { tenantId, serviceName };
}

/** "<tenant>/<service>/<variable>" as a VariablePath. */
export function parseVariablePath(text: string): VariablePath {
  const [tenantId = "", serviceName = "", variableName = ""] = split(
    text,
    3,
    "<tenant>/<service>/<variable>",
  );
  return { tenantId, serviceName, variableName };
}

/** "<tenant>/<service>" or "<tenant>/<service>/<variable>". */
export function parseWatchPath(text: string): ServicePath & { variableName?: string } {
  return text.split("/").length === 3 ? parseVariablePath(text) : parseServicePath(text);
}

/** "<tenant>/<name>" as a PrincipalPath. */
export function parsePrincipalPath(text: string): PrincipalPath {
  const [tenantId = "", name = ""] = split(text, 2, "<tenant>/<principal>");
  return { tenantId, name };
}

/** A variable path as text. */
export const variablePathText = (path: VariablePath): string =>
  `${path.tenantId}/${path.serviceName}/${path.variableName}`;
