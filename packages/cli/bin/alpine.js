#!/usr/bin/env node
// The built CLI lives in ../dist (made by `npm ci`/`npm run build`).
import "../dist/alpine.js";
