// Sending a datagram with libc's sendto(2) on a Bun UDP socket's own descriptor (bun:ffi), and
// asking for a larger receive buffer, which Bun.udpSocket has no option for.
//
//   const fd = descriptorOf(socket);                    // -1: none to use
//   const target = socketAddress("192.0.2.7", 5004);   // once per destination; undefined: not an IP address
//   const errno = sendTo(fd, bytes, target!);           // 0: sent
//   const granted = setReceiveBuffer(fd, 4 << 20);
//
// Why not the socket's own send: Bun parses the address string and issues a one-message sendmmsg
// on every call. With the destination encoded once per peer, a 172-byte RTP packet over loopback
// costs 1.18–1.23× less CPU (bench/udp-send.bench.ts: ≈ 1 µs per send, as little as Bun's connected
// socket, which latching cannot use), and a media worker sends one per leg every 20 ms. Where libc
// cannot be loaded (not glibc), `sendTo` is undefined and the caller keeps Bun's send.
import { dlopen, FFIType, read } from "bun:ffi";
import { isIPv4, isIPv6 } from "node:net";

const AF_INET = 2;
const AF_INET6 = 10;

function loadLibc() {
  try {
    return dlopen("libc.so.6", {
      // ssize_t sendto(…): a datagram's length or -1 fits in the i32 it is read as.
      sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      inet_pton: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
      setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
      __errno_location: { args: [], returns: FFIType.ptr },
    }).symbols;
  } catch {
    return undefined;
  }
}

const libc = loadLibc();

/**
 * The descriptor of a Bun UDP socket for the calls below: a getter Bun's types leave out (node:dgram's
 * own use); -1 when the socket has none or libc cannot be loaded, and the caller keeps Bun's send.
 */
export function descriptorOf(socket: Bun.udp.Socket<"uint8array">): number {
  const descriptor = (socket as unknown as { fd?: unknown }).fd;
  return libc && typeof descriptor === "number" && descriptor >= 0 ? descriptor : -1;
}

/** A destination as struct sockaddr_in / sockaddr_in6 (network byte order), ready for sendto. */
export type SocketAddress = Uint8Array;

/** The sockaddr of an IPv4 or IPv6 literal and a port; undefined for anything else (a name, garbage). */
export function socketAddress(address: string, port: number): SocketAddress | undefined {
  if (!libc || !Number.isInteger(port) || port < 0 || port > 0xffff) return undefined;
  const v4 = isIPv4(address);
  if (!v4 && !isIPv6(address)) return undefined;
  const sockaddr = new Uint8Array(v4 ? 16 : 28);
  const view = new DataView(sockaddr.buffer);
  view.setUint16(0, v4 ? AF_INET : AF_INET6, true); // sa_family_t is in host order: little-endian on x64 and arm64
  view.setUint16(2, port, false);
  const text = new TextEncoder().encode(`${address}\0`);
  // sin_addr at offset 4; sin6_addr at offset 8 (after sin6_flowinfo)
  const ok = libc.inet_pton(v4 ? AF_INET : AF_INET6, text, sockaddr.subarray(v4 ? 4 : 8));
  return ok === 1 ? sockaddr : undefined;
}

/** errno values after which the packet is just dropped: the socket's buffer is full (real-time media is not queued). */
export function isTransientSendError(errno: number): boolean {
  return errno === 11 /* EAGAIN */ || errno === 105 /* ENOBUFS */;
}

/** Sends one datagram on descriptor `fd`: 0, or the errno of the failure. Never throws. */
export const sendTo: ((fd: number, data: Uint8Array, to: SocketAddress) => number) | undefined = libc
  ? (fd, data, to) => {
      if (libc.sendto(fd, data, data.length, 0, to, to.length) >= 0) return 0;
      return read.i32(libc.__errno_location()!, 0);
    }
  : undefined;

const SOL_SOCKET = 1;
const SO_RCVBUF = 8;

/**
 * Asks for a receive buffer of `bytes` on descriptor `fd` (SO_RCVBUF; Linux grants up to
 * net.core.rmem_max) and returns what was granted, in the same units; undefined where libc cannot be
 * loaded or the descriptor refuses.
 */
export function setReceiveBuffer(fd: number, bytes: number): number | undefined {
  if (!libc) return undefined;
  const value = new Int32Array([bytes]);
  if (libc.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, 4) !== 0) return undefined;
  const length = new Uint32Array([4]);
  if (libc.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, length) !== 0) return undefined;
  // Linux reports twice what it grants (the bookkeeping overhead included).
  return value[0]! / 2;
}
