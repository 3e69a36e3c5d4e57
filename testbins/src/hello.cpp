// cpp-dynamic: uses std::string, iostream and a thrown+caught exception so that
// libstdc++.so.6 and libgcc_s.so.1 (unwinder) are DT_NEEDED.
#include <iostream>
#include <stdexcept>
#include <string>
int main() {
    std::string who = "cpp-dynamic";
    try {
        throw std::runtime_error(who);
    } catch (const std::exception &e) {
        std::cout << "hello from " << e.what() << std::endl;
    }
    return 0;
}
