import { LabIcon } from '@jupyterlab/ui-components';

import algofsSvg from '../style/icons/algofs.svg';

/** A lambda in a hexagon outline: the AlgoFS sidebar tab and palette icon (themed via jp-icon3); not a folder
 * shape, so it is told apart from the File Browser's tab at a glance (issue 25, item 9). */
export const algofsIcon = new LabIcon({ name: 'algofs-jupyter:algofs', svgstr: algofsSvg });
