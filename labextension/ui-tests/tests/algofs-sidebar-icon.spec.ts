/**
 * The AlgoFS sidebar icon is told apart from the File Browser's (issue 25, item 9): both tab icons are
 * drawn at 48 px from the SVGs the page shows and their dark shapes compared. A folder with a mark on it
 * covers nearly the same pixels as the folder (intersection over union near 0.9); a different shape
 * does not.
 */
import { expect, test } from '@jupyterlab/galata';
import * as path from 'path';

import { ARTIFACTS, openLab, patientLab } from './journey-helpers';

patientLab();

test('the AlgoFS sidebar icon is not a folder like the File Browser\'s', async ({ page }) => {
  test.setTimeout(180000);
  await openLab(page);
  const algofsTab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="algofs-panel"]');
  const browserTab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]');
  await expect(algofsTab).toBeVisible();
  await expect(browserTab).toBeVisible();
  const sidebar = page.locator('.jp-SideBar.jp-mod-left');
  await sidebar.screenshot({ path: path.join(ARTIFACTS, 'sidebar-icon-01-left-bar.png') });

  const overlap = await page.evaluate(async () => {
    const size = 48;
    const svgOf = (id: string) => {
      const svg = document.querySelector(`.jp-SideBar .lm-TabBar-tab[data-id="${id}"] svg`) as SVGElement;
      const copy = svg.cloneNode(true) as SVGElement;
      copy.setAttribute('width', String(size));
      copy.setAttribute('height', String(size));
      copy.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
      return new XMLSerializer().serializeToString(copy);
    };
    const mask = async (svg: string): Promise<boolean[]> => {
      const image = new Image();
      image.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
      await image.decode();
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = size;
      const context = canvas.getContext('2d')!;
      context.drawImage(image, 0, 0, size, size);
      const pixels = context.getImageData(0, 0, size, size).data;
      const dark: boolean[] = [];
      for (let i = 0; i < pixels.length; i += 4) {
        const luminance = (pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3;
        dark.push(pixels[i + 3] > 128 && luminance < 200); // the icon's ink, not its white marks
      }
      return dark;
    };
    const a = await mask(svgOf('algofs-panel'));
    const b = await mask(svgOf('filebrowser'));
    let both = 0;
    let either = 0;
    a.forEach((ink, i) => {
      both += ink && b[i] ? 1 : 0;
      either += ink || b[i] ? 1 : 0;
    });
    return both / Math.max(either, 1);
  });
  console.log(`AlgoFS vs File Browser icon ink overlap (IoU): ${overlap.toFixed(2)}`);
  expect(overlap).toBeLessThan(0.5);
});
