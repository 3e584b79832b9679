// `node --import tsx --import ./twin/register.ts …`: host tools and tests import firmware modules by
// their manifest names, backed by the twin's Moddable stand-ins and XS globals.
import { installXsGlobals } from "./moddable/xs-globals.ts";
import { registerFirmwareModules } from "./runtime/register.ts";

installXsGlobals();
registerFirmwareModules();
