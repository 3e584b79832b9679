// Host functions behind espguard/ota-state (ota-state.js). Each ESP-IDF failure becomes an
// exception naming the call, so firmware never mistakes a refused confirm for a confirmed image.
#include "xsmc.h"
#include "xsHost.h"
#include "esp_ota_ops.h"
#include "esp_app_desc.h"
#include "esp_system.h"

void xs_espguard_ota_state(xsMachine *the)
{
	esp_ota_img_states_t state;
	const char *name = "undefined";
	if (ESP_OK == esp_ota_get_state_partition(esp_ota_get_running_partition(), &state)) {
		switch (state) {
			case ESP_OTA_IMG_NEW: name = "new"; break;
			case ESP_OTA_IMG_PENDING_VERIFY: name = "pending-verify"; break;
			case ESP_OTA_IMG_VALID: name = "valid"; break;
			case ESP_OTA_IMG_INVALID: name = "invalid"; break;
			case ESP_OTA_IMG_ABORTED: name = "aborted"; break;
			default: break;
		}
	}
	xsmcSetString(xsResult, (char *)name);
}

void xs_espguard_ota_mark_valid(xsMachine *the)
{
	esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
	if (ESP_OK != err)
		xsUnknownError("esp_ota_mark_app_valid_cancel_rollback failed: %d", err);
}

void xs_espguard_ota_mark_invalid(xsMachine *the)
{
	// Returns only when no other image could boot.
	esp_err_t err = esp_ota_mark_app_invalid_rollback_and_reboot();
	xsUnknownError("esp_ota_mark_app_invalid_rollback_and_reboot failed: %d", err);
}

void xs_espguard_restart(xsMachine *the)
{
	esp_restart();
}

void xs_espguard_app_version(xsMachine *the)
{
	xsmcSetString(xsResult, (char *)esp_app_get_description()->version);
}
