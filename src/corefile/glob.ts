/**
 * The file globbing of Corefile `import`, with Go's filepath.Glob semantics (which CoreDNS
 * uses): `*` matches any run of characters other than `/`, `?` one such character, `\c` the
 * character c; matches are returned in lexical order, directory by directory; a pattern without
 * wildcards matches the path if it exists (lstat). Hidden files are not special.
 *
 * Character classes (`[...]`) are not supported: CoreDNS refuses them in imports anyway.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
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

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** globSync with fs/promises: the event loop keeps running while directories are read. */
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
        let names: string[];
        try {
          if (!(await fsp.stat(dir)).isDirectory()) continue;
          names = await fsp.readdir(dir);
        } catch {
          continue;
        }
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
