// Plain-text tables for the terminal commands: a header row and left-aligned columns two spaces
// apart, each as wide as its widest cell (Unicode code points; no colours, safe to pipe).

export function renderTable(header: string[], rows: string[][]): string {
  const clean = rows.map((row) => row.map(printable));
  const widths = header.map((h, i) => Math.max(width(h), ...clean.map((row) => width(row[i] ?? ""))));
  const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell + " ".repeat(widths[i]! - width(cell)))).join("  ").trimEnd();
  return [line(header), ...clean.map(line)].join("\n") + "\n";
}

/** Control characters (a From header's, say) would break the alignment or the terminal: shown escaped. */
function printable(cell: string): string {
  return cell.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

function width(text: string): number {
  return [...text].length;
}

/** `2026-12-06 05:20:01` (UTC) from an ISO 8601 time. */
export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toISOString().slice(0, 19).replace("T", " ");
}

/** `4s`, `1m05s`, `2h03m`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}
