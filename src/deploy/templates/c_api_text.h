// The text of templates/c_api.cpp, embedded by the build (see CMakeLists.txt).
#pragma once

namespace sol::deploy {

extern const char* const kCApiTemplate;

}  // namespace sol::deploy
