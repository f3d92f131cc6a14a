// RIFF/WAVE header of mono 16-bit PCM. The sizes are known only at the end of a recording: write
// the header with 0 first, then again at offset 0 once `dataBytes` is known.
export function wavHeader(sampleRate: number, dataBytes: number): Uint8Array {
  const header = new Uint8Array(44);
  const view = new DataView(header.buffer);
  const ascii = (text: string, at: number) => header.set(new TextEncoder().encode(text), at);
  ascii("RIFF", 0);
  view.setUint32(4, 36 + dataBytes, true);
  ascii("WAVE", 8);
  ascii("fmt ", 12);
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  ascii("data", 36);
  view.setUint32(40, dataBytes, true);
  return header;
}
