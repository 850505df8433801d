/**
 * The file globbing of Corefile `import`, with Go's filepath.Glob semantics (which CoreDNS
 * uses): `*` matches any run of characters other than `/`, `?` one such character, `\c` the
 * character c; matches are returned in lexical order, directory by directory; a pattern without
 * wildcards matches the path if it exists (lstat). Hidden files are not special.
 *
 * Character classes (`[...]`) are not supported: CoreDNS refuses them in imports anyway.
 * `glob` uses callback `fs`, not `node:fs/promises` (not loaded at start-up: bench/PROFILE.md, Footprint).
 */
import fs from 'node:fs';
import path from 'node:path';

/** True when `pattern` contains a Go glob meta character. */
export function hasGlobMeta(pattern: string): boolean {
  return /[*?[\\]/.test(pattern);
}

/** Compiles one path segment's pattern to an anchored RegExp. Throws on `[`. */
function segmentRegExp(segment: string): RegExp {
  let re = '^';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') throw new Error('syntax error in pattern');
    else if (c === '\\') {
      i++;
      if (i >= segment.length) throw new Error('syntax error in pattern');
      re += escapeRegExp(segment[i]!);
    } else re += escapeRegExp(c);
  }
  return new RegExp(re + '$', 'u');
}

function escapeRegExp(c: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(c) ? '\\' + c : c;
}

/** Removes glob escapes from a segment without wildcards. */
function unescapeSegment(segment: string): string {
  return segment.replace(/\\(.)/gu, '$1');
}

/**
 * Expands an absolute glob pattern. Throws Error('syntax error in pattern') for a malformed
 * pattern; a missing directory simply yields no matches (as in Go).
 */
export function globSync(pattern: string): string[] {
  if (!hasGlobMeta(pattern)) {
    try {
      fs.lstatSync(pattern);
      return [pattern];
    } catch {
      return [];
    }
  }
  const root = path.parse(pattern).root;
  const segments = pattern
    .slice(root.length)
    .split('/')
    .filter((s) => s !== '');
  let candidates = [root];
  for (const segment of segments) {
    const next: string[] = [];
    if (!hasGlobMeta(segment)) {
      const name = unescapeSegment(segment);
      for (const dir of candidates) next.push(path.join(dir, name));
    } else {
      const re = segmentRegExp(segment);
      for (const dir of candidates) {
        let names: string[];
        try {
          if (!fs.statSync(dir).isDirectory()) continue;
          names = fs.readdirSync(dir);
        } catch {
          continue;
        }
        names.sort();
        for (const name of names) if (re.test(name)) next.push(path.join(dir, name));
      }
    }
    candidates = next;
  }
  return candidates.filter((p) => {
    try {
      fs.lstatSync(p);
      return true;
    } catch {
      return false;
    }
  });
}

/** True when lstat(p) succeeds; never rejects. */
function exists(p: string): Promise<boolean> {
  return new Promise((resolve) => fs.lstat(p, (err) => resolve(err === null)));
}

/** The names in `dir`, or null when it is not a readable directory; never rejects. */
function readDirectory(dir: string): Promise<string[] | null> {
  return new Promise((resolve) =>
    fs.stat(dir, (err, st) => {
      if (err !== null || !st.isDirectory()) {
        resolve(null);
        return;
      }
      fs.readdir(dir, (err2, names) => resolve(err2 === null ? names : null));
    }),
  );
}

/** globSync without blocking: the event loop keeps running while directories are read. */
export async function glob(pattern: string): Promise<string[]> {
  if (!hasGlobMeta(pattern)) return (await exists(pattern)) ? [pattern] : [];
  const root = path.parse(pattern).root;
  const segments = pattern
    .slice(root.length)
    .split('/')
    .filter((s) => s !== '');
  let candidates = [root];
  for (const segment of segments) {
    const next: string[] = [];
    if (!hasGlobMeta(segment)) {
      const name = unescapeSegment(segment);
      for (const dir of candidates) next.push(path.join(dir, name));
    } else {
      const re = segmentRegExp(segment);
      for (const dir of candidates) {
        const names = await readDirectory(dir);
        if (names === null) continue;
        names.sort();
        for (const name of names) if (re.test(name)) next.push(path.join(dir, name));
      }
    }
    candidates = next;
  }
  const out: string[] = [];
  for (const p of candidates) if (await exists(p)) out.push(p);
  return out;
}
