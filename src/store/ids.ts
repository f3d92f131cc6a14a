// Ids of rows written at call rate (calls, their SIP traces, recordings): a prefix and 32 hex digits
// of a UUIDv7 (RFC 9562 §5.7), whose first 48 bits are the Unix time in milliseconds.
//
// Time-ordered because each id is a key of a B-tree index (calls.id, sip_traces.call_id,
// recordings.id): a random key lands on a random leaf page, so a transaction of a few dozen new
// calls dirties a few dozen pages, each copied into the WAL and again by the checkpoint; ids made
// one after another land on the same rightmost leaves. `make bench BENCH=row-ids`: 40,000 calls, a
// record and a 4.9 KB SIP trace each, 80 per transaction, on SQLite: 57–71 µs of CPU per call
// against 86–91 with random UUIDs, 18.5 KiB written per call (WAL frames and checkpoint copies)
// against 30.6; the gap grows with the table. After the time, Bun counts within the millisecond (12
// bits, so ids of one process sort in the order made) and the last 62 bits are random: an id does
// not give away another.
export function timeOrderedId(prefix: string): string {
  return `${prefix}_${Bun.randomUUIDv7().replace(/-/g, "")}`;
}
