/**
 * What a command prints: for people, aligned tables and "label: value"
 * records; with --json, one JSON document on stdout for scripts (or one
 * JSON object per line for streams). Notes, warnings and progress go to
 * stderr, so that stdout holds only the result in either mode.
 */

/** A column of a human table. */
export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

/** Where and how a command prints. */
export interface Output {
  /** True with --json. */
  readonly json: boolean;
  /** Rows: a table for people, a JSON array for scripts. */
  table<T extends object>(rows: readonly T[], columns: readonly Column<T>[]): void;
  /** One object: "label: value" lines for people, a JSON object for scripts. */
  record(value: object, fields: readonly (readonly [string, string])[]): void;
  /** The outcome of a change: a sentence for people, a JSON object for scripts. */
  result(message: string, value: object): void;
  /** One event of a stream: a line for people, one JSON object per line for scripts. */
  event(line: string, value: object): void;
  /** Raw text on stdout, as is (a value). */
  raw(text: string): void;
  /** A remark on stderr (also with --json). */
  note(message: string): void;
  /** A progress message on stderr, shown only to a person at a terminal. */
  progress(message: string): void;
}

/** Internal: where an Output writes; the process's streams by default. */
export interface OutputStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Output in the mode --json selects. */
export function createOutput(
  json: boolean,
  streams: OutputStreams = { stdout: process.stdout, stderr: process.stderr },
): Output {
  const out = (text: string): void => void streams.stdout.write(`${text}\n`);
  const err = (text: string): void => void streams.stderr.write(`${text}\n`);
  const interactive = streams.stderr.isTTY === true && !json;
  return {
    json,
    table: (rows, columns) => {
      if (json) return out(JSON.stringify(rows, null, 2));
      out(formatTable(rows, columns));
      if (rows.length === 0) err("(none)");
    },
    record: (value, fields) =>
      json
        ? out(JSON.stringify(value, null, 2))
        : out(fields.map(([label, text]) => `${label}: ${text}`).join("\n")),
    result: (message, value) => (json ? out(JSON.stringify(value, null, 2)) : out(message)),
    event: (line, value) => (json ? out(JSON.stringify(value)) : out(line)),
    raw: (text) => void streams.stdout.write(text),
    note: err,
    progress: (message) => {
      if (interactive) err(message);
    },
  };
}

function formatTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = [
    columns.map((c) => c.header),
    ...rows.map((row) => columns.map((c) => c.value(row))),
  ];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => (line[i] ?? "").length)));
  return cells
    .map((line) =>
      line
        .map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** A time as a table or record shows it ("-" for none). */
export const showTime = (time: Date | undefined): string =>
  time === undefined ? "-" : time.toISOString().replace(/\.\d{3}Z$/, "Z");
