/**
 * The naming rule shared by tenants, services and variables (DESIGN §2):
 * 1–128 characters of [A-Za-z0-9._-], not starting with '.'.
 */
const NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** The longest name, in characters (all ASCII, so also in bytes). */
export const MAX_NAME_LENGTH = 128;

/** True when `name` follows the naming rule. */
export function isValidName(name: unknown): name is string {
  return typeof name === "string" && NAME_PATTERN.test(name);
}

/** Why `name` breaks the naming rule, or undefined when it does not. */
export function describeInvalidName(kind: string, name: unknown): string | undefined {
  if (isValidName(name)) return undefined;
  if (typeof name !== "string" || name.length === 0) return `${kind} name is required`;
  if (name.length > MAX_NAME_LENGTH) {
    return `${kind} name is ${name.length} characters long; the limit is ${MAX_NAME_LENGTH}`;
  }
  if (name.startsWith(".")) return `${kind} name must not start with '.'`;
  return `${kind} name may only contain letters, digits, '.', '_' and '-'`;
}
