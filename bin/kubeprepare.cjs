#!/usr/bin/env node
'use strict';
// The installed `kubeprepare` and `bundle` commands. CommonJS on purpose: node starts a CommonJS entry
// ~18 ms sooner than an ES module one (its module loader; 2026-12-03, 2-core VM, medians of 21: a
// one-line version print 125 ms as .cjs, 143 ms as .mjs, `node -e 0` 133 ms), so that a plain
// --version/--help, answered from dist/help.json (src/fast-path.cts), stays within issue 15's 0.15 s.
// Everything else runs the ES module CLI through bin/kubeprepare.js (which falls back to tsx from src/).
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const fastPath = join(__dirname, '..', 'dist', 'fast-path.cjs');
const out = existsSync(fastPath) ? require(fastPath).fastOutput(process.argv.slice(2)) : undefined;
if (out !== undefined) process.stdout.write(out);
else import(pathToFileURL(join(__dirname, 'kubeprepare.js')).href);
