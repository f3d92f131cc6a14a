import { afterEach, describe, expect, test } from "bun:test";
import { inThreadUdpIo, type DatagramSocket } from "../../src/media/udp-io.ts";
import { sendTo, socketAddress } from "../../src/net/udp-sendto.ts";
import { until } from "../helpers/until.ts";

const open: DatagramSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

interface Received { data: number[]; port: number; address: string }

async function receiver(host: string): Promise<{ socket: DatagramSocket; got: Received[]; errors: { count: number } }> {
  const got: Received[] = [];
  const errors = { count: 0 };
  const socket = await inThreadUdpIo.bind(host, 0, {
    data: (data, port, address) => got.push({ data: [...data], port, address }),
    error: () => errors.count++,
  });
  open.push(socket);
  return { socket, got, errors };
}

describe("socketAddress", () => {
  test("an IPv4 literal is a sockaddr_in in network byte order", () => {
    expect([...socketAddress("192.0.2.7", 5004)!]).toEqual([2, 0, 0x13, 0x8c, 192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  test("an IPv6 literal is a sockaddr_in6", () => {
    const sockaddr = socketAddress("2001:db8::1", 5006)!;
    expect(sockaddr.length).toBe(28);
    expect([...sockaddr.subarray(0, 8)]).toEqual([10, 0, 0x13, 0x8e, 0, 0, 0, 0]);
    expect([...sockaddr.subarray(8, 24)]).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  });

  test("anything but an IP literal and a port is refused", () => {
    for (const [address, port] of [["example.com", 5004], ["1.2.3", 5004], ["1.2.3.4 ", 5004], ["", 5004], ["1.2.3.4", 70000], ["1.2.3.4", -1], ["1.2.3.4", 1.5]] as const) {
      expect(socketAddress(address, port)).toBeUndefined();
    }
  });
});

describe("the media socket's send", () => {
  test("libc's sendto is loaded on this system (glibc)", () => {
    expect(sendTo).toBeDefined();
  });

  test("sends the exact bytes of a view into a larger buffer, from the socket's own port", async () => {
    const to = await receiver("127.0.0.1");
    const from = await receiver("127.0.0.1");
    const buffer = Uint8Array.from({ length: 64 }, (_, i) => i);
    expect(from.socket.send(buffer.subarray(5, 17), to.socket.port, "127.0.0.1")).toBe(true);
    expect(from.socket.send(buffer.subarray(40), to.socket.port, "127.0.0.1")).toBe(true);
    await until(() => to.got.length === 2);
    expect(to.got[0]).toEqual({ data: [...buffer.subarray(5, 17)], port: from.socket.port, address: "127.0.0.1" });
    expect(to.got[1]!.data).toEqual([...buffer.subarray(40)]);
    expect(from.errors.count).toBe(0);
  });

  test("follows a change of destination", async () => {
    const first = await receiver("127.0.0.1");
    const second = await receiver("127.0.0.1");
    const from = await receiver("127.0.0.1");
    from.socket.send(Uint8Array.of(1), first.socket.port, "127.0.0.1");
    from.socket.send(Uint8Array.of(2), second.socket.port, "127.0.0.1");
    from.socket.send(Uint8Array.of(3), first.socket.port, "127.0.0.1");
    await until(() => first.got.length === 2 && second.got.length === 1);
    expect(first.got.map((r) => r.data[0])).toEqual([1, 3]);
    expect(second.got.map((r) => r.data[0])).toEqual([2]);
  });

  test("IPv6 over ::1", async () => {
    const to = await receiver("::1");
    const from = await receiver("::1");
    expect(from.socket.send(Uint8Array.of(7, 8, 9), to.socket.port, "::1")).toBe(true);
    await until(() => to.got.length === 1);
    expect(to.got[0]).toEqual({ data: [7, 8, 9], port: from.socket.port, address: "::1" });
  });

  test("an address the socket cannot reach or a name is an error, not a throw", async () => {
    const from = await receiver("127.0.0.1");
    expect(from.socket.send(Uint8Array.of(1), 5004, "::1")).toBe(false); // IPv6 from an IPv4 socket
    expect(from.socket.send(Uint8Array.of(1), 5004, "not an address")).toBe(false);
    expect(from.errors.count).toBe(2);
  });

  test("a peer's ICMP port unreachable surfaces as an error on a later send", async () => {
    const gone = await receiver("127.0.0.1");
    const port = gone.socket.port;
    gone.socket.close();
    const from = await receiver("127.0.0.1");
    // Loopback answers the first datagram with ICMP port unreachable; the next send reports it (ECONNREFUSED).
    await until(() => {
      from.socket.send(Uint8Array.of(1), port, "127.0.0.1");
      return from.errors.count > 0;
    });
    expect(from.errors.count).toBeGreaterThan(0);
  });

  test("a closed socket sends nothing", async () => {
    const to = await receiver("127.0.0.1");
    const from = await receiver("127.0.0.1");
    from.socket.close();
    expect(from.socket.send(Uint8Array.of(1), to.socket.port, "127.0.0.1")).toBe(false);
    // A datagram sent after it from a live socket arrives alone: the closed socket's never went.
    const witness = await receiver("127.0.0.1");
    witness.socket.send(Uint8Array.of(2), to.socket.port, "127.0.0.1");
    await until(() => to.got.length >= 1);
    expect(to.got.map((r) => r.data[0])).toEqual([2]);
  });
});
