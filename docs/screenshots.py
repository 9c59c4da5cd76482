"""Photographs a running TensorBoard for README: `python docs/screenshots.py PORT OUT_DIR`.

Needs Debian's chromium and chromium-driver, and selenium (`pip install selenium`);
docs/make_pictures.sh starts the TensorBoard and calls this.
"""

import os
import pathlib
import sys
import time

# Selenium would otherwise look for browsers and report usage on the network.
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

# Finds a checkbox by its text through TensorBoard's shadow DOMs.
FIND_CHECKBOX = """
function walk(root, text) {
  const all = root.querySelectorAll('*');
  for (const el of all) {
    if (el.shadowRoot) { const found = walk(el.shadowRoot, text); if (found) return found; }
  }
  for (const el of all) {
    if (el.tagName === 'PAPER-CHECKBOX' && (el.textContent || '').includes(text)) return el;
  }
  return null;
}
return walk(document, arguments[0]);
"""
SHOTS = {  # file: (URL fragment, checkbox to tick first)
    "tensorboard-custom-scalars.png": ("#custom_scalars", None),
    "tensorboard-scalars.png": ("#scalars&tagFilter=%5Etest%2F&_smoothingWeight=0", None),
    "tensorboard-images.png": ("#images&tagFilter=weights", "Show actual image size"),
    "tensorboard-errors.png": (
        "#images&tagFilter=confusion_matrix%7Cmisclassified&regexInput=lr%3D0.005%24",
        "Show actual image size",
    ),
    "tensorboard-graphs.png": ("#graphs&run=.", None),
}


def main(port: str, out_dir: str) -> None:
    options = Options()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--window-size=1600,1000"):  # fmt: skip
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        for name, (fragment, checkbox) in SHOTS.items():
            driver.get("about:blank")
            driver.get(f"http://127.0.0.1:{port}/{fragment}")
            time.sleep(8)  # TensorBoard loads its plugins and data after the page
            if checkbox:
                box = driver.execute_script(FIND_CHECKBOX, checkbox)
                if box is None:
                    raise SystemExit(f"no checkbox {checkbox!r} on {fragment}")
                driver.execute_script("arguments[0].click()", box)
                time.sleep(3)
            driver.save_screenshot(str(pathlib.Path(out_dir) / name))
    finally:
        driver.quit()


if __name__ == "__main__":
    main(*sys.argv[1:])
