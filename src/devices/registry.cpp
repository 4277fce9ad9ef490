#include <map>
#include <mutex>

#include "sol/devices/device.h"
#include "sol/devices/host/host_device.h"
#include "sol/error.h"

namespace sol::devices {
namespace {

struct Registry {
    std::mutex mutex;
    std::map<std::string, DeviceFactory> factories;
    std::map<std::pair<std::string, int>, std::unique_ptr<Device>> instances;
};

Registry& registry() {
    static Registry instance;
    return instance;
}

// The host is always there; other devices register when their plug-in loads.
void ensure_builtin_devices() {
    static std::once_flag once;
    std::call_once(once, [] { register_host_device(); });
}

}  // namespace

void register_device(const std::string& name, DeviceFactory factory) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.factories[name] = std::move(factory);
}

std::vector<std::string> device_names() {
    ensure_builtin_devices();
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    std::vector<std::string> names;
    for (const auto& [name, factory] : r.factories) names.push_back(name);
    return names;
}

Device& find_device(const std::string& name, int index) {
    ensure_builtin_devices();
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto factory = r.factories.find(name);
    if (factory == r.factories.end()) {
        std::string known;
        for (const auto& [known_name, f] : r.factories) known += (known.empty() ? "" : ", ") + known_name;
        throw DeviceError("device '" + name + "' is not available in this SOL build; available: " + known);
    }
    auto& instance = r.instances[{name, index}];
    if (!instance) instance = factory->second(index);
    return *instance;
}

}  // namespace sol::devices
