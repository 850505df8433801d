/**
 * dnsperf's report as the drills read it (test/netns/drill.test.ts, test/upgrade/surge.test.ts):
 * the counts, completions per stats interval (`-S 1`), and, with `-v`, which lost queries were
 * for names the cache answers and which for `miss-*` names that go on to kube-dns.
 */
export interface DnsperfResult {
  sent: number;
  completed: number;
  lost: number;
  /** Lost queries (dnsperf -v `> T` lines) for names answered from cache / sent on to kube-dns. */
  lostCached: number;
  lostUpstream: number;
  /** Completed queries per stats interval (1 s). */
  perSecond: number[];
  raw: string;
}

export function parseDnsperf(out: string): DnsperfResult {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    if (!m) throw new Error(`dnsperf output without ${re}:\n${out}`);
    return Number(m[1]);
  };
  const perSecond: number[] = [];
  for (const m of out.matchAll(/^\s*\d+\.\d+: (\d+(?:\.\d+)?)$/gm)) perSecond.push(Number(m[1]));
  let lostCached = 0;
  let lostUpstream = 0;
  for (const m of out.matchAll(/^> T (\S+) /gm)) {
    if (m[1]!.startsWith('miss-')) lostUpstream++;
    else lostCached++;
  }
  // Without the per-query lines (thousands with -v) the output stays readable in a failure message.
  const raw = out
    .split('\n')
    .filter((l) => !l.startsWith('> '))
    .join('\n');
  return {
    sent: num(/Queries sent:\s+(\d+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    lostCached,
    lostUpstream,
    perSecond,
    raw,
  };
}
