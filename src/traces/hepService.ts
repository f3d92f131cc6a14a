// The HEP export service (config `hep`): taps the SIP stack and RTCP into a HepExporter while `hep`
// is configured; a reload that changes it reconnects, one that removes it stops the export.
import type { AppContext, Service } from "../app.ts";
import { type Config, parseHostPort } from "../config/config.ts";
import { createLogger } from "../log.ts";
import { tapRtcp } from "../media/rtcp-tap.ts";
import type { SipStack } from "../sip/stack.ts";
import { HepExporter } from "./hep.ts";

const log = createLogger("hep");

export function hepService(ctx: AppContext, stack: SipStack): Service {
  let running: { settings: string; exporter: HepExporter; detach: (() => void)[] } | undefined;

  const stopExport = () => {
    if (!running) return;
    for (const off of running.detach) off();
    running.exporter.close();
    running = undefined;
  };

  const apply = async (config: Config) => {
    const settings = JSON.stringify(config.hep ?? null);
    if (running?.settings === settings) return;
    stopExport();
    const hep = config.hep;
    if (!hep) return;
    const target = parseHostPort(hep.address);
    if (!target) return; // the schema refused it already
    try {
      const exporter = await HepExporter.open({ host: target.host, port: target.port, captureId: hep.captureId, ...(hep.password ? { password: hep.password } : {}) });
      running = { settings, exporter, detach: [stack.tapMessages((m) => exporter.sip(m)), tapRtcp((p) => exporter.rtcp(p))] };
      log.info("mirroring SIP and RTCP as HEP", { address: hep.address, captureId: hep.captureId });
    } catch (error) {
      log.error("hep.address does not resolve; nothing is mirrored", { address: hep.address, error });
    }
  };

  return {
    name: "hep",
    start: () => apply(ctx.config),
    reload: (config) => apply(config),
    stop: stopExport,
  };
}
