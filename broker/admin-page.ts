/**
 * Paging of admin listings: an answer stays under a byte budget (well below NATS's default 1 MiB
 * max_payload), and says where the next page starts, so `gantry get requests --limit 100000` asks
 * page after page instead of sending one message the server would refuse.
 */

/** Bytes of rows one answer carries at most. */
export const PAGE_BYTES = 512 * 1024;

/** One page of a listing, newest last, and the offset of the next (older) page if there is one. */
export interface Page {
  /** The rows' JSON texts, oldest first. */
  json: string[];
  /** Rows to skip (from the newest) to get the next page; absent on the last page. */
  next?: number;
}

/**
 * The page of `rows` (oldest first) that skips the `offset` newest, takes up to `limit - offset` rows
 * going back in time, and stops before `maxBytes` of JSON (always at least one row).
 *
 * @example
 * const { json, next } = pageOf(rows, { limit: 100_000, offset: 0 });
 */
export function pageOf(
  rows: readonly unknown[],
  { limit, offset }: { limit: number; offset: number },
  maxBytes = PAGE_BYTES,
): Page {
  const json: string[] = [];
  const end = Math.max(0, rows.length - offset);
  const start = Math.max(0, rows.length - limit);
  let bytes = 0;
  let i = end - 1;
  for (; i >= start; i--) {
    const text = JSON.stringify(rows[i]);
    if (json.length > 0 && bytes + text.length + 1 > maxBytes) break;
    bytes += text.length + 1;
    json.push(text);
  }
  json.reverse();
  return i >= start ? { json, next: offset + json.length } : { json };
}
