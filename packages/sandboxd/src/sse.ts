/**
 * Splits a text/event-stream buffer into the `data` payloads of its complete
 * events (blocks ended by a blank line; multi-line data joined with "\n", one
 * leading space after "data:" dropped, comments and other fields ignored).
 * Returns the payloads and the incomplete rest to keep for the next chunk.
 * Expects "\n" line ends (callers normalise "\r\n").
 */
export function takeSseEvents(buffer: string): { data: string[]; rest: string } {
  const data: string[] = [];
  let rest = buffer;
  let sep = rest.indexOf("\n\n");
  while (sep >= 0) {
    const block = rest.slice(0, sep);
    rest = rest.slice(sep + 2);
    const payload = block
      .split("\n")
      .filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).replace(/^ /, ""))
      .join("\n");
    if (payload) data.push(payload);
    sep = rest.indexOf("\n\n");
  }
  return { data, rest };
}
