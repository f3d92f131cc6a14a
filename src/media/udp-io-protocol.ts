// The messages between WorkerUdpIo (main thread, worker-udp-io.ts) and the RTP I/O worker
// (udp-io-worker.ts). Datagrams travel in batches, each one transferred ArrayBuffer of records
// (little-endian):
//
//   datagram  kind 0 u8 | socket id u32 | port u16 | address index u32 | time f64 | length u16 | bytes
//   error     kind 1 u8 | socket id u32                       (worker → main: a send or the socket failed)
//
// Main → worker: the destination; time unused. Worker → main: the source and the arrival time as
// performance.timeOrigin + performance.now() of the worker (each thread has its own timeOrigin).
// Addresses are indexes into a table the writer builds as it meets them: a batch carries the
// strings first used in it, so the reader appends them and no string is built per datagram.

export interface DatagramBatch {
  type: "datagrams";
  buffer: ArrayBuffer;
  /** bytes of `buffer` holding records */
  length: number;
  /** strings of the next address indexes, in order */
  addresses: string[];
  /** the writer started its address table afresh: indexes restart at 0 with this batch */
  resetAddresses: boolean;
}

export type ToWorker =
  | DatagramBatch
  /** sent first: the most received bytes the main thread may have posted but not yet read */
  | { type: "limits"; maxUnreadBytes: number }
  /** the main thread has read a received batch of `bytes` */
  | { type: "read"; bytes: number }
  | { type: "bind"; id: number; host: string; port: number }
  | { type: "close"; id: number }
  /** close every socket and end the worker, after the messages before it */
  | { type: "exit" };

export type FromWorker =
  /** received datagrams, and how many the worker dropped since the last batch (the main thread was behind) */
  | (DatagramBatch & { dropped: number })
  /** its script has run */
  | { type: "ready" }
  | { type: "bound"; id: number; port: number }
  | { type: "bindFailed"; id: number; error: string };

const DATAGRAM = 0;
const ERROR = 1;
const DATAGRAM_HEADER_BYTES = 21;
const ERROR_RECORD_BYTES = 5;
export const MAX_DATAGRAM_BYTES = 0xffff;
const MIN_BATCH_BYTES = 16 * 1024;
/** Sources are chosen by whoever sends to the RTP ports: the table starts afresh rather than grow without end. */
const ADDRESS_TABLE_LIMIT = 4096;

/** Collects records into one buffer until flush() hands it to `post` (which must transfer it). */
export class BatchWriter {
  private bytes = new Uint8Array(0);
  private view = new DataView(this.bytes.buffer);
  private used = 0;
  /** length of the last batch: the next buffer is allocated to hold as much again without growing */
  private lastLength = 0;
  private readonly indexes = new Map<string, number>();
  private newAddresses: string[] = [];
  private resetAddresses = false;

  constructor(
    private readonly post: (batch: DatagramBatch) => void,
    private readonly addressTableLimit = ADDRESS_TABLE_LIMIT,
  ) {}

  /** bytes of records written since the last flush */
  get size(): number {
    return this.used;
  }

  /** `data.length` must not exceed MAX_DATAGRAM_BYTES, `port` must be 0–65535. */
  datagram(socketId: number, data: Uint8Array, port: number, address: string, time: number): void {
    const index = this.addressIndex(address);
    const at = this.reserve(DATAGRAM_HEADER_BYTES + data.length);
    const v = this.view;
    v.setUint8(at, DATAGRAM);
    v.setUint32(at + 1, socketId, true);
    v.setUint16(at + 5, port, true);
    v.setUint32(at + 7, index, true);
    v.setFloat64(at + 11, time, true);
    v.setUint16(at + 19, data.length, true);
    this.bytes.set(data, at + DATAGRAM_HEADER_BYTES);
  }

  error(socketId: number): void {
    const at = this.reserve(ERROR_RECORD_BYTES);
    this.view.setUint8(at, ERROR);
    this.view.setUint32(at + 1, socketId, true);
  }

  flush(): void {
    if (this.used === 0) return;
    const batch: DatagramBatch = {
      type: "datagrams",
      buffer: this.bytes.buffer as ArrayBuffer,
      length: this.used,
      addresses: this.newAddresses,
      resetAddresses: this.resetAddresses,
    };
    this.lastLength = this.used;
    this.bytes = new Uint8Array(0);
    this.used = 0;
    this.newAddresses = [];
    this.resetAddresses = false;
    this.post(batch);
  }

  private addressIndex(address: string): number {
    let index = this.indexes.get(address);
    if (index !== undefined) return index;
    if (this.indexes.size === this.addressTableLimit) {
      this.flush();  // its records use the old indexes
      this.indexes.clear();
      this.resetAddresses = true;
    }
    index = this.indexes.size;
    this.indexes.set(address, index);
    this.newAddresses.push(address);
    return index;
  }

  /** Makes room for `n` bytes at the end; returns their offset. */
  private reserve(n: number): number {
    const at = this.used;
    if (at + n > this.bytes.length) {
      const grown = new Uint8Array(Math.max(MIN_BATCH_BYTES, at + n, 2 * this.bytes.length, this.lastLength + (this.lastLength >> 2)));
      grown.set(this.bytes.subarray(0, at));
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    this.used = at + n;
    return at;
  }
}

type DatagramRecordHandler = (socketId: number, data: Uint8Array, port: number, address: string, time: number) => void;

/** Reads the batches of one BatchWriter, in order; keeps its address table. */
export class BatchReader {
  private addresses: string[] = [];

  /** `data` is a view into the batch's buffer. */
  read(batch: DatagramBatch, onDatagram: DatagramRecordHandler, onError?: (socketId: number) => void): void {
    if (batch.resetAddresses) this.addresses = [];
    for (const address of batch.addresses) this.addresses.push(address);
    const v = new DataView(batch.buffer, 0, batch.length);
    let at = 0;
    while (at < batch.length) {
      const socketId = v.getUint32(at + 1, true);
      if (v.getUint8(at) === ERROR) {
        onError?.(socketId);
        at += ERROR_RECORD_BYTES;
        continue;
      }
      const length = v.getUint16(at + 19, true);
      const data = new Uint8Array(batch.buffer, at + DATAGRAM_HEADER_BYTES, length);
      onDatagram(socketId, data, v.getUint16(at + 5, true), this.addresses[v.getUint32(at + 7, true)]!, v.getFloat64(at + 11, true));
      at += DATAGRAM_HEADER_BYTES + length;
    }
  }
}
