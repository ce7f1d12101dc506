; Inno Setup 6 script for MultiTalk Desktop on Windows (x64). Build recipe: BUILD.md.
; Input: the PyInstaller bundle dist\multitalk-desktop (python build_spec.py, CUDA torch).
; The version comes from pyproject.toml through build\windows\version.iss
; (python installers\windows\write_version.py), or ISCC /DAppVersion=X.Y.Z.

#ifndef AppVersion
  #include "..\..\build\windows\version.iss"
#endif
#ifndef AppVersion
  #error AppVersion is not defined: run python installers\windows\write_version.py first
#endif

#define AppName "MultiTalk Desktop"
#define BundleDir "..\..\dist\multitalk-desktop"
#define GuiExe "multitalk-desktop-gui.exe"
#define CliExe "multitalk-desktop.exe"
; platformdirs.user_data_dir("MultiTalkDesktop", appauthor=False) on Windows: settings, jobs,
; outputs, logs and (unless moved in Settings) the downloaded models.
#define DataDirName "MultiTalkDesktop"

[Setup]
AppId={{5C2F7E64-3B1A-4D8E-9A57-1E6B0C4D2F93}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=MultiTalk Desktop contributors
AppPublisherURL=https://github.com/MeiGen-AI/MultiTalk
VersionInfoVersion={#AppVersion}
; Per-user install, no administrator rights: {autopf} is %LOCALAPPDATA%\Programs. An administrator
; may still choose an all-users install in the dialog.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
SetupIconFile=..\..\resources\icons\multitalk-desktop.ico
UninstallDisplayIcon={app}\{#GuiExe}
UninstallDisplayName={#AppName}
WizardStyle=modern
OutputDir=..\..\dist
OutputBaseFilename=MultiTalkDesktop-{#AppVersion}-setup
; A CUDA bundle is 3-5 GB: setup.exe cannot hold more than about 2.1 GB, so the data goes into
; .bin slices next to it (ship the whole folder). Solid LZMA over GBs of CUDA libraries costs
; much time and memory for little gain, hence non-solid.
DiskSpanning=yes
DiskSliceSize=max
Compression=lzma2/normal
SolidCompression=no
LZMAUseSeparateProcess=yes
CloseApplications=yes
ChangesAssociations=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[Files]
Source: "{#BundleDir}\{#GuiExe}"; DestDir: "{app}"; Flags: ignoreversion
Source: "{#BundleDir}\{#CliExe}"; DestDir: "{app}"; Flags: ignoreversion
Source: "{#BundleDir}\_internal\*"; DestDir: "{app}\_internal"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#GuiExe}"; WorkingDir: "{app}"
Name: "{group}\{#AppName} command line"; Filename: "{cmd}"; Parameters: "/k ""{app}\{#CliExe}"" --help"; WorkingDir: "{userdocs}"
Name: "{group}\{cm:UninstallProgram,{#AppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#GuiExe}"; WorkingDir: "{app}"; Tasks: desktopicon

[Registry]
; "Open with" for portraits and voices: listed under the app, never taking over a default.
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}"; ValueType: string; ValueName: "FriendlyAppName"; ValueData: "{#AppName}"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\shell\open\command"; ValueType: string; ValueData: """{app}\{#GuiExe}"" ""%1"""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".png"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".jpg"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".jpeg"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".webp"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".wav"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".mp3"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".m4a"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".flac"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#GuiExe}\SupportedTypes"; ValueType: string; ValueName: ".mp4"; ValueData: ""

[Run]
Filename: "{app}\{#GuiExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Byte-code caches Python may have written inside the install folder. Never the data folder.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Code]
function DataDir(): String;
begin
  Result := ExpandConstant('{localappdata}\{#DataDirName}');
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  { The user's settings, jobs, videos and models (tens of GB) stay unless they say otherwise.
    A silent uninstall (an upgrade script, an IT tool) never deletes them. }
  if (CurUninstallStep = usPostUninstall) and (not UninstallSilent) and DirExists(DataDir()) then
  begin
    if MsgBox('Also delete your MultiTalk Desktop data?' + #13#10 + #13#10 +
              DataDir() + #13#10 + #13#10 +
              'It holds your settings, job history, finished videos and the downloaded models ' +
              '(models moved to another folder in Settings are not touched). ' +
              'Choose No to keep them for a later install.',
              mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
      DelTree(DataDir(), True, True, True);
  end;
end;
