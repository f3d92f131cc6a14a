// A private PulseAudio server with one null sink, for a headless Firefox on a machine without a
// sound card: Firefox starts an AudioContext (and so WebAudio analysers) only once its audio output
// stream opens; with no output device it retries for ever and the context stays "suspended" at
// currentTime 0. Point a browser at it with PULSE_SERVER=`server`.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "./until.ts";

export interface PulseAudio {
  /** The PULSE_SERVER value: "unix:<socket>". */
  readonly server: string;
  close(): Promise<void>;
}

export async function startPulseAudio(o: { startTimeoutMs?: number } = {}): Promise<PulseAudio> {
  const dir = mkdtempSync(join(tmpdir(), "trunkline-pulse-"));
  const socket = join(dir, "native");
  const proc = Bun.spawn(
    [
      "pulseaudio",
      "--daemonize=no",
      "-n", // no default.pa: only the modules below (no hardware, no D-Bus, no network)
      "--exit-idle-time=-1",
      "--use-pid-file=no",
      "--disable-shm=yes",
      "--log-target=stderr",
      "--log-level=error",
      "-L", "module-null-sink sink_name=trunkline_test",
      "-L", `module-native-protocol-unix auth-anonymous=1 socket=${socket}`,
    ],
    {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      env: { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir, PULSE_RUNTIME_PATH: dir, XDG_CONFIG_HOME: dir },
    },
  );
  const killOnExit = () => proc.kill("SIGKILL");
  process.once("exit", killOnExit);
  const close = async () => {
    proc.kill("SIGKILL");
    await proc.exited;
    process.off("exit", killOnExit);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until(
      () => {
        if (proc.exitCode !== null) throw new Error(`PulseAudio exited with ${proc.exitCode}`);
        return existsSync(socket);
      },
      { timeoutMs: o.startTimeoutMs ?? 10_000, pollMs: 20, what: () => `no socket at ${socket}` },
    );
  } catch (error) {
    await close();
    throw new Error(`PulseAudio did not start: ${(error as Error).message}: ${await new Response(proc.stderr).text()}`);
  }
  return { server: `unix:${socket}`, close };
}
