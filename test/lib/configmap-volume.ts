/**
 * Writes `data` into `dir` laid out the way the kubelet mounts (and updates) a ConfigMap
 * volume: the files go to a fresh `..gen_N` directory, the `..data` symlink is switched to it
 * atomically (symlink `..data_tmp` + rename), and each key is a symlink `key → ..data/key`.
 */
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

let generation = 0;

export async function writeConfigMapVolume(dir: string, data: Record<string, string>): Promise<void> {
  const g = `..gen_${++generation}`;
  await mkdir(join(dir, g), { recursive: true });
  for (const [k, v] of Object.entries(data)) await writeFile(join(dir, g, k), v);
  await symlink(g, join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const k of Object.keys(data)) {
    await symlink(join('..data', k), join(dir, k)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}
