/**
 * Promise forms of the callback `fs` functions the agent awaits, made with util.promisify.
 * Not `node:fs/promises`: that module loads the readline interface, the fs streams and the
 * watchers with it (~1.2 MiB resident per process; bench/PROFILE.md, Footprint), and nothing
 * else of the agent needs them. Same results and errors as the fs/promises functions.
 */
import fs from 'node:fs';
import { promisify } from 'node:util';

export const access = promisify(fs.access);
export const lstat = promisify(fs.lstat);
export const mkdir = promisify(fs.mkdir);
export const readdir = promisify(fs.readdir);
export const readlink = promisify(fs.readlink);
export const rename = promisify(fs.rename);
export const rm = promisify(fs.rm);
export const stat = promisify(fs.stat);
export const writeFile = promisify(fs.writeFile);
