#!/usr/bin/env bash
# Best effort: Debian's chromium for the browser test of `faithfusion view` (tests/test_viewer_browser.py).
# Never fails: without a browser that test skips and says why. Playwright (the test extra) drives this binary;
# no browser is downloaded by Playwright.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: not root or no apt-get; the browser test will skip"; exit 0
fi
timeout 120 apt-get update -qq >/dev/null 2>&1 && timeout 300 apt-get install -y -qq chromium >/dev/null 2>&1 \
  && echo "install_chromium: $(chromium --version 2>/dev/null)" || echo "install_chromium: apt-get failed; the browser test will skip"
exit 0
