import { expect, test } from "bun:test";
import { parseConfigText } from "../../src/config/load.ts";
import { peerNetwork } from "../../src/webrtc/service.ts";

function network(yaml: string) {
  const loaded = parseConfigText(yaml, "test.yaml", { env: {} });
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  return peerNetwork(loaded.config);
}

test("ICE host candidates come from the HTTP address when it names one interface", () => {
  expect(network("http: { host: 10.1.2.3, port: 8080 }\n").hostAddresses).toEqual(["10.1.2.3"]);
  expect(network("http: { host: 0.0.0.0, port: 8080 }\n").hostAddresses).toEqual([]);
  expect(network("http: { host: localhost, port: 8080 }\n").hostAddresses).toEqual([]);
});

test("the public address is webrtc.publicAddress, else the SIP advertised address, and only an IP", () => {
  expect(network("webrtc: { publicAddress: 203.0.113.7 }\nsip: { advertised: { host: 198.51.100.1 } }\n").publicAddress).toBe("203.0.113.7");
  expect(network("sip: { advertised: { host: 198.51.100.1 } }\n").publicAddress).toBe("198.51.100.1");
  expect(network("webrtc: { publicAddress: pbx.example.com }\n").publicAddress).toBeUndefined();
});

test("configured STUN/TURN servers are passed on", () => {
  expect(network('webrtc: { iceServers: [{ urls: ["stun:stun.example.net:3478"] }] }\n').iceServers).toEqual([{ urls: ["stun:stun.example.net:3478"] }]);
});

test("webrtc.portMin/portMax become the ICE port range; one without the other is a config error", () => {
  expect(network("webrtc: { portMin: 40000, portMax: 40999 }\n").portRange).toEqual([40000, 40999]);
  expect(network("").portRange).toBeUndefined();
  const half = parseConfigText("webrtc:\n  portMin: 40000\n", "test.yaml", { env: {} });
  expect(half.ok ? [] : half.errors).toEqual([expect.stringMatching(/^test\.yaml:2:\d+: webrtc\.portMin: portMin and portMax go together/)]);
  const inverted = parseConfigText("webrtc: { portMin: 41000, portMax: 40000 }\n", "test.yaml", { env: {} });
  expect(inverted.ok ? [] : inverted.errors).toEqual([expect.stringMatching(/webrtc\.portMax: must be above portMin/)]);
});
