/** Why a service-file operation failed. */
export type ShmErrorCode =
  /** The file is not a service file (bad magic) or is of another format version. */
  | "FOREIGN"
  /** The file claims to be a service file but its structure is broken. */
  | "CORRUPT"
  /** No variable of that name. */
  | "NOT_FOUND"
  /** A variable of that name exists already. */
  | "EXISTS"
  /** A name or value breaks the documented rules. */
  | "INVALID"
  /** A value exceeds MAX_VALUE_SIZE. */
  | "TOO_LARGE"
  /** A value exceeds the variable's capacity and only the owner may relocate it. */
  | "CAPACITY"
  /** The file cannot grow past its maximum size. */
  | "FULL"
  /** A compare-and-set found another version. */
  | "VERSION_CONFLICT"
  /** The service was deleted. */
  | "DELETED"
  /** The file was closed by this process. */
  | "CLOSED"
  /** Another live process holds the variable's write lock for too long. */
  | "LOCKED"
  /** Opened read-only, or an operation only the owner may do. */
  | "READ_ONLY";

/** The one error type of src/shm. */
export class ShmError extends Error {
  override readonly name = "ShmError";
  constructor(
    readonly code: ShmErrorCode,
    message: string,
  ) {
    super(message);
  }
}
