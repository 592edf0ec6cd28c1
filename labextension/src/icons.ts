import { LabIcon } from '@jupyterlab/ui-components';

import algofsSvg from '../style/icons/algofs.svg';

/** Folder with a lambda: the AlgoFS sidebar tab and palette icon (themed via jp-icon3). */
export const algofsIcon = new LabIcon({ name: 'algofs-jupyter:algofs', svgstr: algofsSvg });
