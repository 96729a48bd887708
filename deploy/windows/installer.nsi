; 通办 node installer for a village station's or township centre's Windows PC (issue 14).
;
; Built by scripts/windows (or by hand, deploy/WINDOWS.md):
;   makensis -DEXE=path\to\tongban-node.exe -DOUTFILE=tongban-node-setup.exe -DVERSION=0.1.0 installer.nsi
;
; What it does: installs tongban-node.exe to Program Files\Tongban; the data goes to
; %ProgramData%\Tongban\data, readable by SYSTEM and administrators only; on a first install it
; takes the county's enrolment bundle and the station's first account (站长) and runs
; `tongban-node init`; then registers and starts the service (`tongban-node service install`: at
; boot, restarted after a crash); puts a desktop shortcut that opens the node's page in the default
; browser. A reinstall or upgrade keeps the data and its accounts. The uninstaller removes the
; program, the service and the shortcut, and keeps the data unless asked.
;
; Silent (/S) options: /BUNDLE=file /USER=name /PASSWORD=pw (first install only), /HTTP=addr:port
; (default 127.0.0.1:8080), /DATA=dir. Uninstaller: /S, and /PURGE to delete the data too.

; A 64-bit installer (the program is 64-bit anyway): it writes to the real Program Files and registry
; without WOW64 redirection, and runs under a 64-bit-only Wine.
Target amd64-unicode
!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "LogicLib.nsh"
!include "nsDialogs.nsh"
!include "x64.nsh"

!ifndef VERSION
  !define VERSION "0.1.0"
!endif
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\TongbanNode"
!define SETTINGS_KEY "Software\Tongban"
!define SHORTCUT "通办代办站点.url"

Name "通办 村镇代办站点"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\Tongban"
RequestExecutionLevel admin
SetCompressor /SOLID lzma
BrandingText "通办 ${VERSION}"

Var Bundle
Var User
Var Password
Var Http
Var DataDir
Var Dialog
Var BundleField
Var UserField
Var PasswordField

!define MUI_ABORTWARNING
!insertmacro MUI_PAGE_WELCOME
Page custom EnrolPage EnrolLeave
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "SimpChinese"

Function .onInit
  SetShellVarContext all
  SetRegView 64
  ${GetParameters} $R0
  ${GetOptions} $R0 "/BUNDLE=" $Bundle
  ${GetOptions} $R0 "/USER=" $User
  ${GetOptions} $R0 "/PASSWORD=" $Password
  ${GetOptions} $R0 "/HTTP=" $Http
  ${If} $Http == ""
    StrCpy $Http "127.0.0.1:8080"
  ${EndIf}
  ${GetOptions} $R0 "/DATA=" $DataDir
  ${If} $DataDir == ""
    ReadRegStr $DataDir HKLM "${SETTINGS_KEY}" "DataDir"
  ${EndIf}
  ${If} $DataDir == ""
    ; With SetShellVarContext all, $APPDATA is %ProgramData%.
    StrCpy $DataDir "$APPDATA\Tongban\data"
  ${EndIf}
FunctionEnd

; The bundle and the first account, only when the station has no data yet.
Function EnrolPage
  ${If} ${FileExists} "$DataDir\db\*.*"
    Abort
  ${EndIf}
  !insertmacro MUI_HEADER_TEXT "接入县级平台" "选择县里发给本站的接入包，并设置本站的第一个账号（站长）。"
  nsDialogs::Create 1018
  Pop $Dialog
  ${NSD_CreateLabel} 0 0 100% 20u "接入包是县政务服务中心为本站制作的文件（.json），通常用U盘带来。"
  Pop $0
  ${NSD_CreateLabel} 0 26u 28% 12u "接入包文件："
  Pop $0
  ${NSD_CreateText} 28% 24u 52% 12u "$Bundle"
  Pop $BundleField
  ${NSD_CreateBrowseButton} 82% 24u 18% 12u "浏览…"
  Pop $0
  ${NSD_OnClick} $0 BrowseBundle
  ${NSD_CreateLabel} 0 46u 28% 12u "站长账号："
  Pop $0
  ${NSD_CreateText} 28% 44u 40% 12u "$User"
  Pop $UserField
  ${NSD_CreateLabel} 0 66u 28% 12u "密码："
  Pop $0
  ${NSD_CreatePassword} 28% 64u 40% 12u ""
  Pop $PasswordField
  ${NSD_CreateLabel} 0 84u 100% 20u "密码至少8位，不能与账号相同，不能是常见密码。请记下密码，登录本站网页时要用。"
  Pop $0
  nsDialogs::Show
FunctionEnd

Function BrowseBundle
  nsDialogs::SelectFileDialog open "" "接入包 (*.json)|*.json"
  Pop $0
  ${If} $0 != ""
    ${NSD_SetText} $BundleField $0
  ${EndIf}
FunctionEnd

Function EnrolLeave
  ${NSD_GetText} $BundleField $Bundle
  ${NSD_GetText} $UserField $User
  ${NSD_GetText} $PasswordField $Password
  ${If} $Bundle == ""
  ${OrIfNot} ${FileExists} "$Bundle"
    MessageBox MB_ICONEXCLAMATION "请选择县里发给本站的接入包文件。"
    Abort
  ${EndIf}
  ${If} $User == ""
  ${OrIf} $Password == ""
    MessageBox MB_ICONEXCLAMATION "请填写站长账号和密码。"
    Abort
  ${EndIf}
FunctionEnd

; Stops the install with a message (and exit code 2 in silent mode).
!macro Fail message
  SetErrorLevel 2
  MessageBox MB_ICONSTOP "${message}" /SD IDOK
  DetailPrint "${message}"
  Abort
!macroend

Section "install"
  SetShellVarContext all
  SetRegView 64
  ${If} ${FileExists} "$INSTDIR\tongban-node.exe"
    ; An upgrade: the running service holds the program; it stops and is registered again below.
    DetailPrint "停止正在运行的服务…"
    nsExec::ExecToLog '"$INSTDIR\tongban-node.exe" service uninstall'
    Pop $0
  ${EndIf}
  SetOutPath "$INSTDIR"
  File "/oname=tongban-node.exe" "${EXE}"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  ; The villagers' data: SYSTEM (the service) and administrators only.
  CreateDirectory "$DataDir"
  nsExec::ExecToLog 'icacls "$DataDir" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F'
  Pop $0
  ${If} $0 != 0
    DetailPrint "注意：未能限制数据目录的访问权限（icacls 返回 $0）。"
  ${EndIf}

  ${IfNot} ${FileExists} "$DataDir\db\*.*"
    ${If} $Bundle == ""
    ${OrIf} $User == ""
    ${OrIf} $Password == ""
      !insertmacro Fail "首次安装需要接入包、站长账号和密码（静默安装：/BUNDLE= /USER= /PASSWORD=）。"
    ${EndIf}
    ; The password reaches `init` through its environment (never a command line or a file).
    System::Call 'Kernel32::SetEnvironmentVariable(t "TONGBAN_PASSWORD", t "$Password") i .r0'
    DetailPrint "初始化本站数据…"
    nsExec::ExecToLog '"$INSTDIR\tongban-node.exe" init --data "$DataDir" --bundle "$Bundle" --user "$User"'
    Pop $0
    System::Call 'Kernel32::SetEnvironmentVariable(t "TONGBAN_PASSWORD", p 0) i .r1'
    ${If} $0 != 0
      !insertmacro Fail "初始化失败（见上方说明）：请检查接入包是否为本站的，密码是否符合要求。"
    ${EndIf}
  ${EndIf}

  DetailPrint "注册并启动服务…"
  nsExec::ExecToLog '"$INSTDIR\tongban-node.exe" service install --data "$DataDir" --http $Http'
  Pop $0
  ${If} $0 != 0
    !insertmacro Fail "服务注册失败（见上方说明）。"
  ${EndIf}

  WriteINIStr "$DESKTOP\${SHORTCUT}" "InternetShortcut" "URL" "http://$Http/"
  WriteRegStr HKLM "${SETTINGS_KEY}" "DataDir" "$DataDir"
  WriteRegStr HKLM "${SETTINGS_KEY}" "Http" "$Http"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "通办 村镇代办站点"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "通办 Tongban"
  WriteRegStr HKLM "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1
SectionEnd

Function un.onInit
  SetShellVarContext all
  SetRegView 64
FunctionEnd

Section "Uninstall"
  nsExec::ExecToLog '"$INSTDIR\tongban-node.exe" service uninstall'
  Pop $0
  Delete "$INSTDIR\tongban-node.exe"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$DESKTOP\${SHORTCUT}"
  ReadRegStr $DataDir HKLM "${SETTINGS_KEY}" "DataDir"
  DeleteRegKey HKLM "${UNINST_KEY}"
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/PURGE" $R1
  ${If} ${Errors}
    ; Asked only in the interactive uninstall; silent keeps the data.
    MessageBox MB_YESNO|MB_ICONQUESTION "是否同时删除本站的全部办件数据和账号？$\n一般请选“否”：数据会保留在 $DataDir，重新安装后继续使用。" /SD IDNO IDYES purge
    Goto done
  ${EndIf}
  purge:
  ${If} $DataDir != ""
    RMDir /r "$DataDir"
  ${EndIf}
  DeleteRegKey HKLM "${SETTINGS_KEY}"
  done:
SectionEnd
