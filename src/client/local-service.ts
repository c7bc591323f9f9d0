/**
 * A service read straight from its memory-mapped file (src/shm), for a
 * process on the server's machine: reads cost no round trip and no
 * syscall; writes go into the file in place, where the server sees them
 * (futex wake-up) and passes them on to every subscriber. Opened by
 * `CommyClient.openLocal`, which asks the server (GetServiceFile) whether
 * the caller may read the service and where its file is.
 */
import { ServiceFile, ShmError, type VariableInfo } from "../shm/index.js";
import { fromShmError } from "../core/shm-errors.js";
import { CommyError } from "./client-errors.js";

export type { VariableInfo };

/** A value with the version it belongs to (never a torn value). */
export interface LocalValue {
  data: Buffer;
  version: number;
}

/** Options of `LocalService.write`. */
export interface LocalWriteOptions {
  /** Compare-and-set: write only when the variable is at this version, else VERSION_CONFLICT. */
  expectedVersion?: number;
}

/** Where a service's file is, as the server answered GetServiceFile. */
export interface ServiceFileLocation {
  tenantId: string;
  serviceName: string;
  serviceId: string;
  path: string;
}

/**
 * One service's variables through the mapped file. Every method is
 * synchronous; failures are CommyErrors (NOT_FOUND once the service was
 * deleted, VERSION_CONFLICT, RESOURCE_EXHAUSTED for a value longer than
 * the variable's capacity — only the server can move a variable to a
 * larger place, so write such a value with `CommyClient.writeVariable`).
 * Close it when done; a deleted service's file stays mapped until then.
 */
export class LocalService {
  readonly tenantId: string;
  readonly serviceName: string;
  readonly serviceId: string;
  readonly #file: ServiceFile;

  /** @internal Made by CommyClient.openLocal. */
  constructor(location: ServiceFileLocation, file: ServiceFile) {
    this.tenantId = location.tenantId;
    this.serviceName = location.serviceName;
    this.serviceId = location.serviceId;
    this.#file = file;
  }

  /**
   * @internal Maps the file the server named, checking that it still holds
   * that service (a service deleted and created again has another file).
   */
  static open(location: ServiceFileLocation): LocalService {
    const file = translated(() => ServiceFile.open(location.path));
    if (file.serviceId !== location.serviceId || file.deleted) {
      file.close();
      throw new CommyError("NOT_FOUND", `service ${location.serviceName} was deleted`);
    }
    return new LocalService(location, file);
  }

  /** The path of the mapped file. */
  get path(): string {
    return this.#file.path;
  }

  /** True once the service was deleted on the server (or this was closed): let go of it. */
  get deleted(): boolean {
    return this.#file.deleted;
  }

  /** The current value and version of a variable. */
  read(variableName: string): LocalValue {
    return translated(() => this.#live().read(variableName));
  }

  /** The current version of a variable, without copying its value. */
  version(variableName: string): number {
    return translated(() => this.#live().version(variableName));
  }

  /**
   * Writes a value in place and returns the new version. The server
   * announces it to subscribers like any other write.
   */
  write(variableName: string, data: Uint8Array, options: LocalWriteOptions = {}): number {
    return translated(() => this.#live().write(variableName, data, options));
  }

  /** Every variable with its version, size and capacity, by name. */
  list(): VariableInfo[] {
    return translated(() => this.#live().list());
  }

  /** Unmaps the file. */
  close(): void {
    this.#file.close();
  }

  /**
   * The file, unless its service was deleted: its bytes stay mapped until
   * close(), but they are no longer anybody's values.
   */
  #live(): ServiceFile {
    if (this.#file.deleted) {
      throw new CommyError("NOT_FOUND", `service ${this.serviceName} was deleted`);
    }
    return this.#file;
  }
}

/** Runs a file operation, turning its failures into CommyErrors. */
function translated<T>(operation: () => T): T {
  try {
    return operation();
  } catch (error) {
    throw localError(error);
  }
}

function localError(error: unknown): CommyError {
  if (error instanceof CommyError) return error;
  if (error instanceof ShmError) {
    if (error.code === "CAPACITY") {
      return new CommyError(
        "RESOURCE_EXHAUSTED",
        "the value is longer than the variable's capacity; write it through the server",
        { cause: error },
      );
    }
    return fromShmError(error);
  }
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  if (code === "EACCES" || code === "EPERM") {
    return new CommyError("PERMISSION_DENIED", "this process may not open the service file", {
      cause: error,
    });
  }
  return new CommyError("INTERNAL_ERROR", "the service file could not be used", { cause: error });
}
