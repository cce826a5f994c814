/**
 * Rows in PostgreSQL's binary COPY format (`copy … from stdin with (format binary)`): each field its
 * length and its bytes in network order, so that neither side formats or parses numbers, nor escapes
 * text. The hot table's rows are written this way.
 *
 * Format: a signature and two zero words; per row a 16-bit field count, then per field a 32-bit
 * length (-1 for null) and the value (int4, int8, float8 big-endian; text as UTF-8; bool one byte);
 * a 16-bit -1 at the end.
 */

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const TWO32 = 4_294_967_296;

/** Builds binary COPY data in a buffer that grows as needed. */
export class BinaryCopy {
  #buf: Buffer;
  #pos = 0;

  constructor(bytes = 1 << 16) {
    this.#buf = Buffer.allocUnsafe(Math.max(64, bytes));
  }

  /** The bytes written so far. */
  get length(): number {
    return this.#pos;
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n));
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  /** Starts the data (once, first). */
  header(): this {
    this.#room(19);
    this.#pos += SIGNATURE.copy(this.#buf, this.#pos);
    this.#buf.writeInt32BE(0, this.#pos);
    this.#buf.writeInt32BE(0, this.#pos + 4);
    this.#pos += 8;
    return this;
  }

  /** Starts a row of `fields` fields. */
  row(fields: number): this {
    this.#room(2);
    this.#pos = this.#buf.writeInt16BE(fields, this.#pos);
    return this;
  }

  null(): this {
    this.#room(4);
    this.#pos = this.#buf.writeInt32BE(-1, this.#pos);
    return this;
  }

  int4(v: number): this {
    this.#room(8);
    this.#buf.writeInt32BE(4, this.#pos);
    this.#pos = this.#buf.writeInt32BE(v, this.#pos + 4);
    return this;
  }

  /** A `bigint` from a number (milliseconds, ids): whole, within ±2^53. */
  int8(v: number): this {
    this.#room(12);
    const w = Math.round(v);
    this.#buf.writeInt32BE(8, this.#pos);
    this.#buf.writeInt32BE(Math.floor(w / TWO32), this.#pos + 4);
    this.#pos = this.#buf.writeUInt32BE(w >>> 0, this.#pos + 8);
    return this;
  }

  float8(v: number): this {
    this.#room(12);
    this.#buf.writeInt32BE(8, this.#pos);
    this.#pos = this.#buf.writeDoubleBE(v, this.#pos + 4);
    return this;
  }

  bool(v: boolean): this {
    this.#room(5);
    this.#buf.writeInt32BE(1, this.#pos);
    this.#buf[this.#pos + 4] = v ? 1 : 0;
    this.#pos += 5;
    return this;
  }

  text(v: string): this {
    // UTF-8 takes at most three bytes per UTF-16 unit.
    this.#room(4 + v.length * 3);
    const n = this.#buf.write(v, this.#pos + 4, 'utf8');
    this.#buf.writeInt32BE(n, this.#pos);
    this.#pos += 4 + n;
    return this;
  }

  /** A `"char"` (one byte: an ASCII letter). */
  char(v: string): this {
    this.#room(5);
    this.#buf.writeInt32BE(1, this.#pos);
    this.#buf[this.#pos + 4] = v.charCodeAt(0);
    this.#pos += 5;
    return this;
  }

  /** A `jsonb` from its JSON text: a version byte (1), then the text. */
  jsonb(json: string): this {
    this.#room(5 + json.length * 3);
    this.#buf[this.#pos + 4] = 1;
    const n = this.#buf.write(json, this.#pos + 5, 'utf8');
    this.#buf.writeInt32BE(n + 1, this.#pos);
    this.#pos += 5 + n;
    return this;
  }

  /** Text, or null when there is none. */
  textOrNull(v: string | null | undefined): this {
    return v === undefined || v === null ? this.null() : this.text(v);
  }

  float8OrNull(v: number | null | undefined): this {
    return v === undefined || v === null ? this.null() : this.float8(v);
  }

  int8OrNull(v: number | null | undefined): this {
    return v === undefined || v === null ? this.null() : this.int8(v);
  }

  /** Appends bytes another writer made (whole fields). */
  bytes(b: Uint8Array): this {
    this.#room(b.length);
    this.#buf.set(b, this.#pos);
    this.#pos += b.length;
    return this;
  }

  /** The bytes from `from` to here (a view, valid until the next write). */
  slice(from = 0): Buffer {
    return this.#buf.subarray(from, this.#pos);
  }

  /** Ends the data; the whole of it. */
  end(): Buffer {
    this.#room(2);
    this.#pos = this.#buf.writeInt16BE(-1, this.#pos);
    return this.#buf.subarray(0, this.#pos);
  }
}

/**
 * Rows into a temporary table of this session (made on first use, emptied at each commit) by binary
 * COPY, for one `insert … select … on conflict` to take them from: bulk rows to merge into a table,
 * without thousands of array parameters to format and parse. `definition` is the table's columns, or
 * `like <table>` for a table's own; `columns`, when given, the ones the data holds.
 *
 * @example
 * await stage(tx, 'ingest_pieces', 'key int, hour bigint', rows.end());
 * await tx.query('insert into cost_hourly (key_id, hour) select * from ingest_pieces on conflict …');
 */
export async function stage(
  tx: { query(sql: string): Promise<unknown>; copy(target: string, data: Uint8Array): Promise<void> },
  table: string,
  definition: string,
  data: Uint8Array,
  columns?: readonly string[],
): Promise<void> {
  await tx.query(`create temp table if not exists ${table} (${definition}) on commit delete rows`);
  await tx.copy(columns ? `${table} (${columns.join(', ')})` : table, data);
}

/**
 * Copies rows straight into `target`, in a savepoint: the fast way when none of them is there yet.
 * When one is (a unique violation) the copy is undone and this resolves false, for the caller to
 * merge them instead (`stage` and `insert … on conflict`). Any other failure is thrown.
 *
 * @example
 * if (!(await copyNew(tx, 'lineage_refs', rows))) await merge(tx, rows);
 */
export async function copyNew(
  tx: { query(sql: string): Promise<unknown>; copy(target: string, data: Uint8Array): Promise<void> },
  target: string,
  data: Uint8Array,
): Promise<boolean> {
  await tx.query('savepoint copy_new');
  try {
    await tx.copy(target, data);
  } catch (err) {
    if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err;
    await tx.query('rollback to savepoint copy_new');
    return false;
  }
  await tx.query('release savepoint copy_new');
  return true;
}

const UNIQUE_VIOLATION = '23505';
